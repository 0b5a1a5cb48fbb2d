using Hmm.Runtime;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Samples.TestHmm;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Dmirror;

/// <summary>A machine with lock validation on, one process, and helpers for patterned buffers.</summary>
public abstract class DmirrorTestBase
{
    protected const int PageSize = Page.Size;

    protected Machine Machine = null!;
    protected Process P = null!;

    [SetUp]
    public void CreateMachine()
    {
        Machine = new Machine(new MachineOptions { SystemMemory = 256L << 20, LockValidation = true, HugeTlbPages = 4 });
        P = Machine.CreateProcess("app");
    }

    [TearDown]
    public void DisposeMachine() => Machine.Dispose();

    protected static byte[] Pattern(int npages, int seed)
    {
        var b = new byte[npages * PageSize];
        for (int i = 0; i < b.Length; i++) b[i] = (byte)((i * 7) + (i >> 12) + seed);
        return b;
    }

    /// <summary>An anonymous read/write mapping filled by the CPU with <see cref="Pattern"/>.</summary>
    protected ulong Filled(int npages, int seed = 1)
    {
        ulong buf = P.Mmap((ulong)npages * PageSize, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        P.Write(buf, Pattern(npages, seed));
        return buf;
    }

    protected byte[] CpuRead(ulong addr, int npages)
    {
        var b = new byte[npages * PageSize];
        P.Read(addr, b);
        return b;
    }

    protected static byte[] Mirror(int npages) => new byte[npages * PageSize];

    protected byte[] Snap(Hmm.Samples.TestHmm.Dmirror m, ulong addr, int npages)
    {
        var prot = new byte[npages];
        Assert.That(m.Snapshot(addr, npages, prot, out var c), Is.EqualTo(Errno.Ok));
        Assert.That(c, Is.EqualTo(new DmirrorCounters(npages, 0)));
        return prot;
    }

    protected static byte Local(int minor) => minor < 2 ? DmirrorProt.DevPrivateLocal : DmirrorProt.DevCoherentLocal;
}
