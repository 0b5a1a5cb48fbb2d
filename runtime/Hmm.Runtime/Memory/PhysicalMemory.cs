using System.Runtime.InteropServices;

namespace Hmm.Runtime.Memory;

/// <summary>
/// One memory node's bytes: a single pinned native arena covering pfns
/// [<see cref="FirstPfn"/>, <see cref="FirstPfn"/> + <see cref="PageCount"/>). Allocated zeroed with
/// calloc, which the C library serves with an anonymous mmap, so the host commits only the pages
/// the simulation touches: a 1 GiB machine is cheap to create in a test.
/// </summary>
public sealed unsafe class PhysicalMemory : IDisposable
{
    private byte* _base;

    /// <summary>Reserves <paramref name="pageCount"/> pages starting at <paramref name="firstPfn"/>.</summary>
    public PhysicalMemory(ulong firstPfn, ulong pageCount)
    {
        if (pageCount == 0) throw new ArgumentOutOfRangeException(nameof(pageCount), "a memory node needs at least one page");
        FirstPfn = firstPfn;
        PageCount = pageCount;
        _base = (byte*)NativeMemory.AllocZeroed((nuint)(pageCount << Page.Shift));
    }

    /// <summary>First pfn of the node.</summary>
    public ulong FirstPfn { get; }

    /// <summary>Number of 4 KiB pages.</summary>
    public ulong PageCount { get; }

    /// <summary>Whether <paramref name="pfn"/> lies in this node.</summary>
    public bool Contains(ulong pfn) => pfn - FirstPfn < PageCount;

    /// <summary>Address of the first byte of <paramref name="pfn"/> (kmap / page_address).</summary>
    public byte* PageAddress(ulong pfn)
    {
        if (_base == null) throw new ObjectDisposedException(nameof(PhysicalMemory));
        return _base + ((pfn - FirstPfn) << Page.Shift);
    }

    /// <summary>The bytes of 2^<paramref name="order"/> pages starting at <paramref name="pfn"/>.</summary>
    public Span<byte> Pages(ulong pfn, int order = 0) => new(PageAddress(pfn), Page.Size << order);

    /// <summary>clear_page / clear_huge_page.</summary>
    public void Clear(ulong pfn, int order = 0) => NativeMemory.Clear(PageAddress(pfn), (nuint)(Page.Size << order));

    /// <summary>copy_page: copies 2^<paramref name="order"/> pages.</summary>
    public void Copy(ulong dstPfn, ulong srcPfn, int order = 0)
        => Buffer.MemoryCopy(PageAddress(srcPfn), PageAddress(dstPfn), Page.Size << order, Page.Size << order);

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_base == null) return;
        NativeMemory.Free(_base);
        _base = null;
    }
}
