using Hmm.Runtime;
using Hmm.Runtime.Memory;
using Hmm.Samples.Mlx5;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Mlx5;

/// <summary>The verbs' rules (B.1, B.2, B.8, B.9): registration, protection domains, access flags, READ and atomics.</summary>
public sealed class VerbsTests
{
    private Mlx5Testbed _tb = null!;

    [SetUp]
    public void SetUp() => _tb = new Mlx5Testbed();

    [TearDown]
    public void TearDown() => _tb.Dispose();

    [Test]
    public void RegMr_NeedsOnDemandAndARange_DeregOnce_AndNothingIsPinned()
    {
        ulong buf = Mlx5Testbed.Map(_tb.Server, 16);
        Assert.That(_tb.NicB.RegMr(_tb.PdB, buf, 16 * Page.Size, AccessFlags.RemoteWrite, out _), Is.EqualTo(Errno.EOPNOTSUPP));
        Assert.That(_tb.NicB.RegMr(_tb.PdB, buf, 0, AccessFlags.All, out _), Is.EqualTo(Errno.EINVAL));
        Assert.That(_tb.NicB.RegMr(_tb.PdB, buf, 16 * Page.Size, AccessFlags.All, out var mr), Is.EqualTo(Errno.Ok));
        Assert.That(mr!.Umem!.MappedPages, Is.Zero, "nothing present, nothing mapped, nothing pinned");
        _tb.Server.Store(buf, 1UL);
        Assert.That(_tb.NicB.DeregMr(mr), Is.EqualTo(Errno.Ok));
        Assert.That(_tb.NicB.DeregMr(mr), Is.EqualTo(Errno.EINVAL));
        _tb.Finish();
    }

    [Test]
    public void RdmaWrite_IntoAnotherPdOrWithoutRemoteWrite_IsARemoteAccessError()
    {
        ulong buf = Mlx5Testbed.Map(_tb.Server, 4);
        var readOnly = _tb.Register(_tb.NicB, _tb.PdB, buf, 4, AccessFlags.RemoteRead | AccessFlags.OnDemand);
        var otherPd = _tb.NicB.AllocPd(_tb.Server);
        var foreign = _tb.Register(_tb.NicB, otherPd, buf, 4);
        ulong src = Mlx5Testbed.Map(_tb.Client, 4);
        var local = _tb.Register(_tb.NicA, _tb.PdA, src, 4);
        var sge = new Sge(src, 4 * Page.Size, local.Key);
        Assert.That(_tb.QpA.RdmaWrite(sge, buf, readOnly.Key), Is.EqualTo(Errno.EACCES));
        Assert.That(_tb.QpA.RdmaWrite(sge, buf, foreign.Key), Is.EqualTo(Errno.EACCES));
        Assert.That(_tb.QpA.RdmaWrite(sge, buf, 0xdead00), Is.EqualTo(Errno.EACCES), "unknown rkey");
        Assert.That(_tb.QpA.RdmaWrite(new Sge(src, 4 * Page.Size, 0xbeef00), buf, readOnly.Key), Is.EqualTo(Errno.EINVAL), "unknown lkey");
        Assert.That(readOnly.Counters.PageFaults + foreign.Counters.PageFaults, Is.Zero);
        _tb.Finish();
    }

    [Test]
    public void AdviseMr_RejectsWriteAdviceOnAReadOnlyMr_AndMrsOfAnotherPd()
    {
        ulong buf = Mlx5Testbed.Map(_tb.Server, 8);
        var readOnly = _tb.Register(_tb.NicB, _tb.PdB, buf, 8, AccessFlags.RemoteRead | AccessFlags.OnDemand);
        Sge[] sges = [new Sge(buf, 8 * Page.Size, readOnly.Key)];
        Assert.That(_tb.NicB.AdviseMr(_tb.PdB, AdviseKind.PrefetchWrite, flush: true, sges), Is.EqualTo(Errno.EINVAL));
        Assert.That(_tb.NicB.AdviseMr(_tb.NicB.AllocPd(_tb.Server), AdviseKind.Prefetch, flush: true, sges), Is.EqualTo(Errno.EINVAL));
        Assert.That(_tb.NicB.AdviseMr(_tb.PdB, AdviseKind.Prefetch, flush: true, sges), Is.EqualTo(Errno.Ok));
        Assert.That(readOnly.Counters.PagePrefetch, Is.EqualTo(8));
        Assert.That(readOnly.UseCount, Is.EqualTo(1), "the advice dropped its references");
        Assert.That(readOnly.Umem!.TryGetTranslation(buf, out _, out bool p2p, out bool writable), Is.True);
        Assert.That(p2p || writable, Is.False, "PREFETCH maps read-only, host memory");
        _tb.Finish();
    }

    [Test]
    public void RdmaRead_AndAtomics_ReachTheRemoteMemory()
    {
        ulong remote = Mlx5Testbed.Map(_tb.Server, 2);
        var data = Mlx5Testbed.Pattern(2 * Page.Size, 41);
        _tb.Server.Write(remote, data);
        var mrB = _tb.Register(_tb.NicB, _tb.PdB, remote, 2);
        ulong local = Mlx5Testbed.Map(_tb.Client, 3);
        var mrA = _tb.Register(_tb.NicA, _tb.PdA, local, 3);
        Assert.That(_tb.QpA.RdmaRead(new Sge(local, 2 * Page.Size, mrA.Key), remote, mrB.Key), Is.EqualTo(Errno.Ok));
        Assert.That(Mlx5Testbed.Matches(_tb.Client, local, data), Is.True);

        ulong word = remote + 8;
        ulong before = BitConverter.ToUInt64(data, 8);
        var result = local + 2 * Page.Size;
        Assert.That(_tb.QpA.Atomic(new Sge(result, 8, mrA.Key), word, mrB.Key, RdmaAtomicOp.FetchAdd, 5, 0, out ulong original), Is.EqualTo(Errno.Ok));
        Assert.That(original, Is.EqualTo(before));
        Assert.That(_tb.Client.Load<ulong>(result), Is.EqualTo(before));
        Assert.That(_tb.QpA.Atomic(new Sge(result, 8, mrA.Key), word, mrB.Key, RdmaAtomicOp.CompareSwap, 99, before + 5, out original), Is.EqualTo(Errno.Ok));
        Assert.That(original, Is.EqualTo(before + 5));
        Assert.That(_tb.QpA.Atomic(new Sge(result, 8, mrA.Key), word, mrB.Key, RdmaAtomicOp.CompareSwap, 7, 1234, out original), Is.EqualTo(Errno.Ok));
        Assert.That(original, Is.EqualTo(99UL), "a failed compare leaves the word");
        Assert.That(_tb.Server.Load<ulong>(word), Is.EqualTo(99UL));
        Assert.That(_tb.QpA.Atomic(new Sge(result, 8, mrA.Key), word + 1, mrB.Key, RdmaAtomicOp.FetchAdd, 1, 0, out _), Is.EqualTo(Errno.EINVAL), "unaligned");
        _tb.Finish();
    }

    [Test]
    public void ImplicitChildren_RacingCreatorsOfOneSlot_ShareOneChild()
    {
        var mr = _tb.RegisterImplicit(_tb.NicB, _tb.PdB);
        ulong buf = Mlx5Testbed.Map(_tb.Server, 16);
        var threads = new Thread[4];
        var results = new Errno[4];
        for (int i = 0; i < threads.Length; i++)
        {
            int t = i;
            threads[i] = new Thread(() => results[t] = Mlx5IbDevice.Pagefault(mr, buf + (ulong)t * Page.Size, buf + (ulong)(t + 1) * Page.Size));
        }
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        Assert.That(results, Is.All.EqualTo(Errno.Ok));
        Assert.That(mr.Implicit!.ChildCount, Is.EqualTo(1));
        Assert.That(mr.Counters.ChildrenCreated, Is.EqualTo(1), "one creator won; the others reused its child");
        Assert.That(mr.Implicit.MappedPages, Is.EqualTo(4));
        _tb.Finish();
    }
}
