using FsCheck;
using FsCheck.Fluent;
using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Samples.Nouveau;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Nouveau.Properties;

internal enum GpuOpKind { GpuWrite, GpuRead, GpuAtomic, GpuRandomWrite, CpuWrite, CpuRead, Munmap, Mprotect, Fork, Bind, Evict, Switch, Mmap }

/// <summary>One abstract operation; <see cref="A"/>–<see cref="D"/> are raw random numbers resolved against the state when it runs.</summary>
internal readonly record struct GpuOp(GpuOpKind Kind, int A, int B, int C, int D)
{
    public override string ToString() => $"new(GpuOpKind.{Kind}, {A}, {B}, {C}, {D})";
}

/// <summary>A generated case: THP on or off and the operations.</summary>
internal sealed record GpuCase(bool Thp, GpuOp[] Ops)
{
    public override string ToString() => $"thp: {Thp}, {Ops.Length} ops:\n" + string.Join(",\n", Ops.Select(o => "    " + o));
}

internal static class GpuGen
{
    private static Gen<GpuOp> OpOf(GpuOpKind kind)
        => Gen.ArrayOf(Gen.Choose(0, int.MaxValue - 1), 4).Select(x => new GpuOp(kind, x[0], x[1], x[2], x[3]));

    private static readonly Gen<GpuOp> Op = Gen.Frequency(
        (10, OpOf(GpuOpKind.GpuWrite)),
        (8, OpOf(GpuOpKind.GpuRead)),
        (4, OpOf(GpuOpKind.GpuAtomic)),
        (5, OpOf(GpuOpKind.GpuRandomWrite)),
        (8, OpOf(GpuOpKind.CpuWrite)),
        (8, OpOf(GpuOpKind.CpuRead)),
        (2, OpOf(GpuOpKind.Munmap)),
        (3, OpOf(GpuOpKind.Mprotect)),
        (2, OpOf(GpuOpKind.Fork)),
        (5, OpOf(GpuOpKind.Bind)),
        (3, OpOf(GpuOpKind.Evict)),
        (3, OpOf(GpuOpKind.Switch)),
        (2, OpOf(GpuOpKind.Mmap)));

    public static readonly Gen<GpuCase> Case =
        from thp in Gen.Elements(true, false)
        from n in Gen.Choose(30, 50)
        from ops in Gen.ArrayOf(Op, n)
        select new GpuCase(thp, ops);

    public static IEnumerable<GpuCase> Shrink(GpuCase c)
    {
        for (int chunk = c.Ops.Length / 2; chunk >= 1; chunk /= 2)
            for (int start = 0; start + chunk <= c.Ops.Length; start += chunk)
                yield return c with { Ops = c.Ops.Take(start).Concat(c.Ops.Skip(start + chunk)).ToArray() };
    }

    public static Arbitrary<GpuCase> Arbitrary => Arb.From(Case, Shrink);
}

/// <summary>
/// Runs a <see cref="GpuCase"/> on a fresh machine with the DSL GPU driver against a plain model:
/// for every mapped page its protection, and for every 8-byte word written its last value. After
/// every GPU or CPU read the values must match; at the end every mapped word is read back by the
/// CPU, everything is unmapped, and no VRAM page may still be in use.
/// </summary>
internal sealed class GpuModelRunner : IDisposable
{
    private const int Ps = Page.Size;

    private sealed class Buffer(ulong start, int pages)
    {
        public ulong Start { get; } = start;
        public int Pages { get; } = pages;
        public bool[] Mapped { get; } = Enumerable.Repeat(true, pages).ToArray();
        public bool[] Writable { get; } = Enumerable.Repeat(true, pages).ToArray();
    }

    private readonly Machine _machine;
    private readonly Process _p;
    private readonly SimDevice _device;
    private readonly NouveauGpu _gpu;
    private readonly List<Buffer> _buffers = [];
    private readonly Dictionary<ulong, ulong> _model = [];
    private ulong _stamp = 1;

    public static readonly Dictionary<string, long> Stats = [];

    private GpuModelRunner(bool thp)
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 96L << 20, LockValidation = true, TransparentHugePages = thp });
        _p = _machine.CreateProcess("app");
        _device = new SimDevice(_machine, "gpu0");
        _gpu = new NouveauGpu();
        Assert.That(_gpu.Attach(_device, _p), Is.EqualTo(Errno.Ok));
    }

    public void Dispose() => _machine.Dispose();

    public static void Run(GpuCase c)
    {
        using var r = new GpuModelRunner(c.Thp);
        r.AddBuffer(64);
        r.AddBuffer(600); // crosses 2 MiB blocks
        foreach (var op in c.Ops)
        {
            r.Apply(op);
            lock (Stats) Stats[op.Kind.ToString()] = Stats.GetValueOrDefault(op.Kind.ToString()) + 1;
        }
        r.Finish();
    }

    private void AddBuffer(int pages)
    {
        if (_buffers.Count >= 4) return;
        ulong start = _p.Mmap((ulong)pages * Ps, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        _buffers.Add(new Buffer(start, pages));
    }

    private ulong Expected(ulong word) => _model.GetValueOrDefault(word);

    /// <summary>A buffer and a page range [first, first + count) of it from the raw numbers.</summary>
    private (Buffer B, int First, int Count) Range(int a, int b, int maxPages)
    {
        var buf = _buffers[a % _buffers.Count];
        int first = b % buf.Pages;
        int count = 1 + (b / 7) % Math.Min(maxPages, buf.Pages - first);
        return (buf, first, count);
    }

    private void Apply(GpuOp op)
    {
        var svm = _gpu.Svm;
        switch (op.Kind)
        {
            case GpuOpKind.GpuWrite:
            case GpuOpKind.GpuRead:
            case GpuOpKind.GpuRandomWrite:
            case GpuOpKind.GpuAtomic:
            {
                var (buf, first, count) = Range(op.A, op.B, 96);
                ulong start = buf.Start + (ulong)first * Ps, bytes = (ulong)count * Ps;
                ulong value = _stamp++ << 8;
                var kernel = op.Kind switch
                {
                    GpuOpKind.GpuWrite => GpuWorkloads.WriteEveryPage(start, bytes, value) with { StrideBytes = (ulong)Ps + 8UL * (ulong)(op.C % 8) },
                    GpuOpKind.GpuRead => GpuWorkloads.ReadEveryPage(start, bytes) with { StrideBytes = (ulong)Ps + 8UL * (ulong)(op.C % 8) },
                    GpuOpKind.GpuRandomWrite => GpuWorkloads.OversubscribedRandom(start, bytes, 1 + op.C % 300, value, (ulong)op.D),
                    _ => GpuWorkloads.AtomicCounters(start, 1 + op.C % 64, 1 + op.D % 500),
                };
                var run = svm.Run(kernel);
                Assert.That(run.Completed, Is.True, $"{op}: the kernel finished");
                var exec = _device.Executor;
                if (op.Kind == GpuOpKind.GpuRead)
                {
                    for (int t = 0; t < kernel.Threads; t++)
                        if (exec.StateOf(t) == DeviceThreadState.Done)
                            Assert.That(exec.ResultOf(t), Is.EqualTo(Expected(kernel.AddressOf(t))), $"{op}: GPU read of 0x{kernel.AddressOf(t):x}");
                }
                if (exec.Count(DeviceThreadState.Failed) > 0)
                {
                    // A thread fails only when the kernel touched an unmapped page or wrote a
                    // read-only one (the generated service cancels a whole coalesced range).
                    Assert.That(CanFail(kernel), Is.True, $"{op}: a thread failed though every page it could reach was mapped and writable enough");
                }
                kernel.ApplyTo(_model, t => exec.StateOf(t) == DeviceThreadState.Done);
                break;
            }
            case GpuOpKind.CpuWrite:
            {
                var (buf, first, _) = Range(op.A, op.B, 1);
                if (!buf.Mapped[first] || !buf.Writable[first]) break;
                ulong word = buf.Start + (ulong)first * Ps + (ulong)(op.C % (Ps / 8)) * 8;
                ulong value = _stamp++ << 8;
                _p.Store(word, value);
                _model[word] = value;
                break;
            }
            case GpuOpKind.CpuRead:
            {
                var (buf, first, count) = Range(op.A, op.B, 32);
                for (int i = first; i < first + count; i++)
                {
                    if (!buf.Mapped[i]) continue;
                    ulong word = buf.Start + (ulong)i * Ps + (ulong)(op.C % 4) * 8;
                    Assert.That(_p.Load<ulong>(word), Is.EqualTo(Expected(word)), $"{op}: CPU read of 0x{word:x}");
                }
                break;
            }
            case GpuOpKind.Munmap:
            {
                var (buf, first, count) = Range(op.A, op.B, 16);
                _p.Munmap(buf.Start + (ulong)first * Ps, (ulong)count * Ps);
                for (int i = first; i < first + count; i++)
                {
                    buf.Mapped[i] = false;
                    ulong page = buf.Start + (ulong)i * Ps;
                    for (ulong w = page; w < page + Ps; w += 8) _model.Remove(w);
                }
                break;
            }
            case GpuOpKind.Mprotect:
            {
                var (buf, first, count) = Range(op.A, op.B, 32);
                bool rw = op.C % 2 == 0;
                bool all = true;
                for (int i = first; i < first + count; i++) all &= buf.Mapped[i];
                if (!all) break; // mprotect over a hole fails (ENOMEM); keep it simple
                _p.Mprotect(buf.Start + (ulong)first * Ps, (ulong)count * Ps, rw ? Prot.Read | Prot.Write : Prot.Read);
                for (int i = first; i < first + count; i++) buf.Writable[i] = rw;
                break;
            }
            case GpuOpKind.Fork:
            {
                var child = _p.Fork();
                var (buf, first, count) = Range(op.A, op.B, 8);
                for (int i = first; i < first + count; i++)
                {
                    if (!buf.Mapped[i]) continue;
                    ulong word = buf.Start + (ulong)i * Ps;
                    Assert.That(child.Load<ulong>(word), Is.EqualTo(Expected(word)), $"{op}: the child sees the parent's data");
                    if (buf.Writable[i]) child.Store(word, 0xC41D);
                }
                child.Exit();
                break;
            }
            case GpuOpKind.Bind:
            {
                var (buf, first, count) = Range(op.A, op.B, 600);
                svm.Bind(buf.Start + (ulong)first * Ps, buf.Start + (ulong)(first + count) * Ps);
                break;
            }
            case GpuOpKind.Evict:
            {
                var (buf, first, count) = Range(op.A, op.B, 600);
                svm.Evict(buf.Start + (ulong)first * Ps, buf.Start + (ulong)(first + count) * Ps);
                break;
            }
            case GpuOpKind.Switch:
                if (op.A % 3 == 0) svm.Switch(GpuPolicyMode.Nouveau);
                else
                    svm.Switch(GpuPolicyMode.Uvm, new UvmPolicyOptions
                    {
                        VramChunks = 1 + op.B % 3,
                        AccessedBy = op.C % 5 == 0,
                        PrefetchGrowToBigPages = op.C % 2 == 0,
                        AccessCounterMigration = op.D % 2 == 0,
                        AccessCounterThreshold = 1 + op.D % 64,
                    });
                break;
            case GpuOpKind.Mmap:
                AddBuffer(8 + op.A % 200);
                break;
        }
    }

    private bool IsMapped(ulong a, bool write)
    {
        foreach (var b in _buffers)
        {
            if (a < b.Start || a >= b.Start + (ulong)b.Pages * Ps) continue;
            int i = (int)((a - b.Start) / Ps);
            return b.Mapped[i] && (!write || b.Writable[i]);
        }
        return false;
    }

    /// <summary>Whether some access of <paramref name="k"/> hits an unmapped page, or a read-only one for a write or atomic.</summary>
    private bool CanFail(KernelDescription k)
    {
        bool write = k.Access is DeviceAccess.Write or DeviceAccess.Atomic;
        for (long g = 0; g < k.TotalOps; g++)
            if (!IsMapped(k.AddressOf(g), write)) return true;
        return false;
    }

    private void Finish()
    {
        foreach (var b in _buffers)
            for (int i = 0; i < b.Pages; i++)
            {
                if (!b.Mapped[i]) continue;
                ulong page = b.Start + (ulong)i * Ps;
                var bytes = new byte[Ps];
                _p.Read(page, bytes);
                for (int w = 0; w < Ps / 8; w++)
                {
                    ulong v = BitConverter.ToUInt64(bytes, w * 8);
                    if (v != Expected(page + (ulong)w * 8)) Assert.Fail($"final read of 0x{page + (ulong)w * 8:x}: {v:x} != {Expected(page + (ulong)w * 8):x}");
                }
            }
        foreach (var b in _buffers) _p.Munmap(b.Start, (ulong)b.Pages * Ps);
        Assert.That(_gpu.Svm.VramPagesInUse, Is.Zero, "no VRAM page leaked once everything is unmapped");
        Assert.That(_gpu.Svm.Unload(), Is.EqualTo(Errno.Ok));
        _p.Exit();
        _machine.CheckInvariants();
    }
}
