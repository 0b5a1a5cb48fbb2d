using FsCheck;
using FsCheck.Fluent;

namespace Hmm.Runtime.Tests.Properties;

internal enum OpKind { Mmap, Munmap, Mprotect, Mremap, Madvise, Fork, Exit, Spawn, Load, Store, Read, Write, Reclaim, FileIo,
    // device memory (MmCase.Devices)
    Migrate, Exclusive, DevRemove, Pin }

/// <summary>
/// One abstract operation. <see cref="P"/> picks the process and <see cref="A"/>–<see cref="D"/> are
/// raw random numbers resolved against the state when the operation runs (which mapping, which
/// offset, which flags), so any subsequence of a generated sequence is still a valid sequence.
/// </summary>
internal readonly record struct Op(OpKind Kind, int P, int A, int B, int C, int D)
{
    public override string ToString() => $"new(OpKind.{Kind}, {P}, {A}, {B}, {C}, {D})";
}

/// <summary>A generated case: THP on or off, and the operations.</summary>
internal sealed record MmCase(bool Thp, Op[] Ops, bool Devices = false)
{
    public override string ToString()
        => $"thp: {(Thp ? "true" : "false")}, devices: {(Devices ? "true" : "false")}, {Ops.Length} ops:\n" + string.Join(",\n", Ops.Select(o => "    " + o));
}

internal static class MmGen
{
    public const int MinOps = 200;
    public const int MaxOps = 240;

    private static Gen<Op> OpOf(OpKind kind)
        => Gen.ArrayOf(Gen.Choose(0, int.MaxValue - 1), 5).Select(x => new Op(kind, x[0], x[1], x[2], x[3], x[4]));

    public static readonly Gen<Op> Op = Gen.Frequency(
        (12, OpOf(OpKind.Mmap)),
        (5, OpOf(OpKind.Munmap)),
        (5, OpOf(OpKind.Mprotect)),
        (7, OpOf(OpKind.Mremap)),
        (8, OpOf(OpKind.Madvise)),
        (3, OpOf(OpKind.Fork)),
        (2, OpOf(OpKind.Exit)),
        (1, OpOf(OpKind.Spawn)),
        (9, OpOf(OpKind.Load)),
        (10, OpOf(OpKind.Store)),
        (8, OpOf(OpKind.Read)),
        (9, OpOf(OpKind.Write)),
        (2, OpOf(OpKind.Reclaim)),
        (2, OpOf(OpKind.FileIo)));

    /// <summary>The same mix plus device-memory operations: migration to and from a private and a coherent device, device-exclusive access, device removal, pins.</summary>
    public static readonly Gen<Op> DeviceOp = Gen.Frequency(
        (12, OpOf(OpKind.Mmap)),
        (5, OpOf(OpKind.Munmap)),
        (4, OpOf(OpKind.Mprotect)),
        (6, OpOf(OpKind.Mremap)),
        (7, OpOf(OpKind.Madvise)),
        (3, OpOf(OpKind.Fork)),
        (2, OpOf(OpKind.Exit)),
        (1, OpOf(OpKind.Spawn)),
        (9, OpOf(OpKind.Load)),
        (10, OpOf(OpKind.Store)),
        (8, OpOf(OpKind.Read)),
        (9, OpOf(OpKind.Write)),
        (2, OpOf(OpKind.Reclaim)),
        (1, OpOf(OpKind.FileIo)),
        (14, OpOf(OpKind.Migrate)),
        (4, OpOf(OpKind.Exclusive)),
        (1, OpOf(OpKind.DevRemove)),
        (5, OpOf(OpKind.Pin)));

    public static readonly Gen<MmCase> DeviceCase =
        from thp in Gen.Elements(true, false)
        from n in Gen.Choose(MinOps, MaxOps)
        from ops in Gen.ArrayOf(DeviceOp, n)
        select new MmCase(thp, ops, Devices: true);

    public static Arbitrary<MmCase> DeviceArbitrary => Arb.From(DeviceCase, Shrink);

    public static readonly Gen<MmCase> Case =
        from thp in Gen.Elements(true, false)
        from n in Gen.Choose(MinOps, MaxOps)
        from ops in Gen.ArrayOf(Op, n)
        select new MmCase(thp, ops);

    /// <summary>Shrinks by deleting chunks of operations, halves first, then single operations.</summary>
    public static IEnumerable<MmCase> Shrink(MmCase c)
    {
        var ops = c.Ops;
        for (int chunk = ops.Length / 2; chunk >= 1; chunk /= 2)
        {
            for (int start = 0; start + chunk <= ops.Length; start += chunk)
                yield return c with { Ops = ops.Take(start).Concat(ops.Skip(start + chunk)).ToArray() };
        }
    }

    public static Arbitrary<MmCase> Arbitrary => Arb.From(Case, Shrink);
}
