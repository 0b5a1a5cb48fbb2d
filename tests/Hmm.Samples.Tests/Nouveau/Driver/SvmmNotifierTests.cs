using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;
using Hmm.Samples.Nouveau;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Nouveau.Driver;

/// <summary>
/// nouveau's SVMM whole-mm mmu_notifier (drivers.md A.1, A.5; nouveau_svm.c): SVM_INIT registers
/// it (__mmu_notifier_register, one per client, a second init is -EBUSY), the client's teardown
/// (nouveau_svmm_fini) clears svmm->vmm under svmm->mutex and puts it, and free_notifier frees the
/// SVMM after the SRCU grace period that follows the last put; process exit unlinks it without a
/// callback (nouveau_mn_ops has no release) and never frees it by itself.
/// </summary>
public sealed class SvmmNotifierTests : GpuTestBase
{
    [Test]
    public void SvmInit_RegistersOneWholeMmNotifier_SecondInitIsEbusy()
    {
        Assert.That(Svm.Svmm, Is.Null, "no SVMM before SVM_INIT");
        Assert.That(Svm.SvmInit(), Is.EqualTo(Errno.Ok));
        var svmm = Svm.Svmm!;
        Assert.That(svmm.IsRegistered, Is.True);
        Assert.That(svmm.Users, Is.EqualTo(1), "__mmu_notifier_register gives one user");
        Assert.That(svmm.Mm, Is.SameAs(P.Mm));
        Assert.That(Svm.SvmInit(), Is.EqualTo(Errno.EBUSY), "a client may create only one SVMM");
        Assert.That(Svm.Svmm, Is.SameAs(svmm));

        Svm.SvmFini();
        MmuNotifier.Synchronize(Machine);
        Assert.That(svmm.Frees, Is.EqualTo(1));
        Assert.That(Svm.SvmInit(), Is.EqualTo(Errno.EBUSY), "cli->svm.cli stays set after fini");
        Finish();
    }

    [Test]
    public void SvmInit_WithoutAMirroredProcess_Enodev()
    {
        var gpu = new NouveauGpu();
        Assert.That(gpu.Svm.SvmInit(), Is.EqualTo(Errno.ENODEV));
        Assert.That(gpu.Svm.Svmm, Is.Null);
        Finish();
    }

    // nouveau_svmm_invalidate_range_start: -EAGAIN for a non-blockable range before any lock (the
    // OOM reaper keeps that range); own MIGRATE events left to the migration code; a CLEAR clears.
    [Test]
    public void Notifier_RefusesNonBlockable_IgnoresOwnMigrations_ClearsTheRest()
    {
        Assert.That(Svm.SvmInit(), Is.EqualTo(Errno.Ok));
        var svmm = Svm.Svmm!;
        ulong buf = Filled(64);
        Assert.That(Gpu.MigrateToDevice(buf, buf + 16 * PageSize, out long moved), Is.EqualTo(Errno.Ok));
        Assert.That(moved, Is.EqualTo(16));
        Assert.That(svmm.OwnMigrationsIgnored, Is.GreaterThan(0), "the GPU's own MIGRATE event");
        Assert.That(svmm.ClearedEntries, Is.Zero);

        // A CPU-side change the notifier must act on: munmap (UNMAP).
        Assert.That(Gpu.Fault(buf + 32 * PageSize, buf + 48 * PageSize, write: false), Is.EqualTo(Errno.Ok));
        long before = svmm.ClearedEntries;
        P.Munmap(buf + 32 * PageSize, 16 * PageSize);
        Assert.That(Gpu.DeviceTable.Lookup(buf + 40 * PageSize, out _), Is.False, "the GPU no longer maps unmapped memory");
        Assert.That(svmm.ClearedEntries, Is.GreaterThanOrEqualTo(before), "interval notifiers run first; the whole-mm start clears what is left");

        Svm.SvmFini();
        MmuNotifier.Synchronize(Machine);
        Assert.That(svmm.Frees, Is.EqualTo(1));
        Finish();
    }

    [Test]
    public void Notifier_NonBlockableRange_IsRefusedWithEagain_AndTheReaperKeepsIt()
    {
        Assert.That(Svm.SvmInit(), Is.EqualTo(Errno.Ok));
        var svmm = Svm.Svmm!;
        ulong buf = Filled(8);
        var skipped = P.OomKill();
        Assert.That(svmm.NonBlockableRefused, Is.GreaterThan(0));
        Assert.That(skipped, Has.Some.Matches<(ulong Start, ulong End)>(r => r.Start <= buf && buf < r.End), "a refused range keeps its pages");
        Svm.SvmFini();
        P.Exit();
        MmuNotifier.Synchronize(Machine);
        Assert.That(svmm.Frees, Is.EqualTo(1));
        Finish();
    }

    // Process exit while the GPU still holds the SVMM: exit_mmap unlinks the notifier (no release
    // op, no free); the SVMM is freed once, by the put of fini, after the exit teardown.
    [Test]
    public void ProcessExitWhileTheGpuHoldsTheSvmm_FreedOnce_OnlyAfterExitAndFini()
    {
        Assert.That(Svm.SvmInit(), Is.EqualTo(Errno.Ok));
        var svmm = Svm.Svmm!;
        bool exitedWhenFreed = false, tornDownWhenFreed = false;
        svmm.OnFree = s => { exitedWhenFreed = P.HasExited; tornDownWhenFreed = s.TornDown; };
        ulong buf = Filled(32);
        Assert.That(Gpu.Fault(buf, buf + 32 * PageSize, write: true), Is.EqualTo(Errno.Ok));

        P.Exit();
        MmuNotifier.Synchronize(Machine);
        Assert.That(svmm.IsRegistered, Is.False, "exit_mmap's release unlinked the notifier");
        Assert.That(svmm.Frees, Is.Zero, "exit alone never frees the SVMM: the client still holds it");
        Assert.That(svmm.IsFreed, Is.False);

        Svm.SvmFini();
        MmuNotifier.Synchronize(Machine);
        Assert.That(svmm.Frees, Is.EqualTo(1));
        Assert.That(exitedWhenFreed && tornDownWhenFreed, Is.True, "freed after the exit teardown and after fini");
        Svm.SvmFini();
        MmuNotifier.Synchronize(Machine);
        Assert.That(svmm.Frees, Is.EqualTo(1), "a second fini frees nothing");
        Finish();
    }

    [Test]
    public void FiniBeforeExit_FreesAfterTheGracePeriod_ExitFindsNothing()
    {
        Assert.That(Svm.SvmInit(), Is.EqualTo(Errno.Ok));
        var svmm = Svm.Svmm!;
        ulong buf = Filled(16);
        Svm.SvmFini();
        Assert.That(svmm.IsRegistered, Is.False, "the last put unlinks at once");
        MmuNotifier.Synchronize(Machine);
        Assert.That(svmm.Frees, Is.EqualTo(1));
        long cleared = svmm.ClearedEntries;
        P.Munmap(buf, 16 * PageSize);
        Assert.That(svmm.ClearedEntries, Is.EqualTo(cleared), "no callback after the put");
        P.Exit();
        MmuNotifier.Synchronize(Machine);
        Assert.That(svmm.Frees, Is.EqualTo(1));
        Finish();
    }

    // Both orders, raced: one thread exits the process while another runs the client's teardown.
    // Whoever is last, the SVMM is freed exactly once, after fini cleared svmm->vmm.
    [Test]
    public void ExitAndFiniRacingOnTwoThreads_FreedExactlyOnce([Values(0, 1, 2)] int seed)
    {
        var rng = new Random(seed);
        for (int round = 0; round < 12; round++)
        {
            using var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20, LockValidation = true });
            var p = machine.CreateProcess("app");
            var device = new SimDevice(machine, "gpu0");
            var gpu = new NouveauGpu();
            Assert.That(gpu.Attach(device, p), Is.EqualTo(Errno.Ok));
            Assert.That(gpu.Svm.SvmInit(), Is.EqualTo(Errno.Ok));
            var svmm = gpu.Svm.Svmm!;
            int frees = 0;
            bool tornDown = true;
            svmm.OnFree = s => { Interlocked.Increment(ref frees); tornDown &= s.TornDown; };
            ulong buf = p.Mmap(64 * 4096, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
            for (int i = 0; i < 64; i++) p.Store(buf + (ulong)i * 4096, i);
            Assert.That(gpu.Fault(buf, buf + 64 * 4096, write: true), Is.EqualTo(Errno.Ok));
            int exitDelay = rng.Next(0, 3000), finiDelay = rng.Next(0, 3000);
            using var start = new Barrier(2);
            Exception? failure = null;
            var exiter = new Thread(() =>
            {
                try { start.SignalAndWait(); Thread.SpinWait(exitDelay); p.Exit(); }
                catch (Exception e) { failure = e; }
            });
            exiter.Start();
            start.SignalAndWait();
            Thread.SpinWait(finiDelay);
            gpu.Svm.SvmFini();
            exiter.Join();
            Assert.That(failure, Is.Null, failure?.ToString());
            MmuNotifier.Synchronize(machine);
            Assert.That(frees, Is.EqualTo(1), $"round {round}");
            Assert.That(svmm.Frees, Is.EqualTo(1));
            Assert.That(tornDown, Is.True, "never freed while svmm->vmm was still set");
            Assert.That(svmm.IsRegistered, Is.False);
            gpu.Detach();
            machine.CheckInvariants();
        }
    }
}
