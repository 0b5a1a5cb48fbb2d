namespace Hmm.Samples.Mlx5;

/// <summary>
/// The hardware's translation of an access through an mkey: an explicit MR's MTT, or an implicit
/// MR's KSM entry for the 1 GiB slot (the null mkey when no child exists: the access faults) and
/// then the child's MTT. Each burst stays inside one child.
/// </summary>
internal static class Dma
{
    /// <summary>Reads through <paramref name="mr"/>; returns the bytes read before the first missing translation.</summary>
    public static int Read(MemoryRegion mr, ulong va, System.Span<byte> into)
    {
        if (mr.Umem is { } umem) return umem.DmaRead(va, into);
        var child = mr.Implicit!.Acquire(va);
        if (child == null) return 0;
        try { return child.DmaRead(va, into[..(int)System.Math.Min((ulong)into.Length, child.End - va)]); }
        finally { ImplicitOdp.Release(child); }
    }

    /// <summary>Writes through <paramref name="mr"/>; returns the bytes written before the first missing (or read-only) translation.</summary>
    public static int Write(MemoryRegion mr, ulong va, System.ReadOnlySpan<byte> from)
    {
        if (mr.Umem is { } umem) return umem.DmaWrite(va, from);
        var child = mr.Implicit!.Acquire(va);
        if (child == null) return 0;
        try { return child.DmaWrite(va, from[..(int)System.Math.Min((ulong)from.Length, child.End - va)]); }
        finally { ImplicitOdp.Release(child); }
    }
}
