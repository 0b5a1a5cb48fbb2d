using Hmm.Dsl;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Samples.Nouveau;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Nouveau.Policy;

/// <summary>
/// The residency decision: nouveau maps in place and takes device-exclusive entries for atomics
/// (drivers.md A.3 step 10, A.6); UVM migrates, maps remotely for accessed_by, throttles and pins
/// thrashing pages, prefetches after min_faults, and evicts past its chunk budget (C.2–C.6).
/// </summary>
public sealed class GpuResidencyPolicyTests
{
    private const ulong Block = 0x1_0000_0000;
    private const long Us = 1_000;
    private static readonly BlockMask All = BlockMask.Range(0, Page.PmdPages);

    private static FaultRange Fault(ulong va, bool write = false, bool atomic = false, bool prefetch = false, int pages = 1)
        => new(1, va, va + (ulong)pages * Page.Size, write, atomic, prefetch);

    [Test]
    public void Nouveau_never_migrates_on_a_fault_and_takes_exclusive_for_atomics()
    {
        var p = new GpuResidencyPolicy(4, new GpuDriverCounters());
        Assert.Multiple(() =>
        {
            Assert.That(p.Mode, Is.EqualTo(GpuPolicyMode.Nouveau));
            Assert.That(p.Decide(Fault(Block), 0).Action, Is.EqualTo(FaultAction.MapInPlace));
            Assert.That(p.Decide(Fault(Block, write: true), 0).Action, Is.EqualTo(FaultAction.MapInPlace));
            Assert.That(p.Decide(Fault(Block, atomic: true), 0).Action, Is.EqualTo(FaultAction.Exclusive));
            Assert.That(GpuResidencyPolicy.NouveauDecision(Fault(Block, write: true, atomic: true)), Is.EqualTo(FaultAction.Exclusive));
        });
    }

    [Test]
    public void Nouveau_ignores_thrashing_prefetch_and_eviction()
    {
        var counters = new GpuDriverCounters();
        var p = new GpuResidencyPolicy(2, counters);
        for (int i = 0; i < 10; i++) p.RecordMigration(Block, Block + Page.Size, i % 2, i * 10 * Us, ThrashingCause.FaultMigration);
        var faulted = default(BlockMask);
        faulted.Set(0);
        Assert.Multiple(() =>
        {
            Assert.That(p.Decide(Fault(Block), 100 * Us), Is.EqualTo(ResidencyDecision.MapInPlace));
            Assert.That(counters.ThrashingEvents, Is.Zero);
            Assert.That(p.Prefetch(Block, faulted, default, All, residentAnywhere: false, 0).IsEmpty(), Is.True);
            Assert.That(p.MustEvict(2), Is.False, "nouveau has no runtime eviction (A.10)");
            Assert.That(p.CpuNapNs(Block, 0), Is.Zero);
        });
    }

    [Test]
    public void Uvm_migrates_faults_to_the_gpu_including_atomics()
    {
        var p = new GpuResidencyPolicy(4, new GpuDriverCounters(), GpuPolicyMode.Uvm);
        Assert.That(p.Decide(Fault(Block), 0).Action, Is.EqualTo(FaultAction.MigrateToDevice));
        Assert.That(p.Decide(Fault(Block, atomic: true), 0).Action, Is.EqualTo(FaultAction.MigrateToDevice));
        Assert.That(p.Decide(Fault(Block, prefetch: true), 0).Action, Is.EqualTo(FaultAction.MapInPlace), "a HW prefetch never faults pages in");
    }

    [Test]
    public void Uvm_with_accessed_by_maps_remotely()
    {
        var counters = new GpuDriverCounters();
        var p = new GpuResidencyPolicy(4, counters, GpuPolicyMode.Uvm, new UvmPolicyOptions { AccessedBy = true });
        Assert.That(p.Decide(Fault(Block), 0).Action, Is.EqualTo(FaultAction.RemoteMap));
        Assert.That(p.Decide(Fault(Block, atomic: true), 0).Action, Is.EqualTo(FaultAction.Exclusive));
        Assert.That(counters.RemoteMaps, Is.EqualTo(2));
    }

    [Test]
    public void Uvm_throttles_then_pins_a_thrashing_page_to_system_memory_and_maps_it_remotely()
    {
        var counters = new GpuDriverCounters();
        var p = new GpuResidencyPolicy(4, counters, GpuPolicyMode.Uvm);
        long t = 0;
        for (int i = 0; i < 3; i++, t += 100 * Us)
            p.RecordMigration(Block, Block + Page.Size, i % 2 == 0 ? ProcessorIds.Gpu : ProcessorIds.Cpu, t, ThrashingCause.FaultMigration);
        // Period 1 is opened by the CPU (it runs free); the GPU is throttled for the period.
        Assert.That(p.CpuNapNs(Block, t), Is.Zero);
        var d = p.Decide(Fault(Block), t + 10 * Us);
        Assert.That(d, Is.EqualTo(new ResidencyDecision(FaultAction.MapInPlace, Throttled: true, t + 500 * Us)));
        Assert.That(counters.Throttled, Is.EqualTo(1));
        // Periods 2..9 alternate; the 10th pins.
        for (int period = 2; period <= 9; period++) p.Decide(Fault(Block), t + (period - 1) * 500 * Us);
        var pinned = p.Decide(Fault(Block, pages: 2), t + 9 * 500 * Us);
        Assert.Multiple(() =>
        {
            Assert.That(pinned.Action, Is.EqualTo(FaultAction.RemoteMap));
            Assert.That(pinned.Throttled, Is.False);
            Assert.That(counters.Pins, Is.EqualTo(1));
            Assert.That(counters.RemoteMaps, Is.EqualTo(1));
            Assert.That(p.Decide(Fault(Block, atomic: true), t + 9 * 500 * Us + Us).Action, Is.EqualTo(FaultAction.Exclusive));
        });
    }

    [Test]
    public void The_cpu_naps_while_the_gpu_holds_the_period()
    {
        var p = new GpuResidencyPolicy(4, new GpuDriverCounters(), GpuPolicyMode.Uvm);
        for (int i = 0; i < 3; i++) p.RecordMigration(Block, Block + Page.Size, i % 2, i * 100 * Us, ThrashingCause.FaultMigration);
        long t = 300 * Us;
        Assert.That(p.Decide(Fault(Block), t).Throttled, Is.False, "the GPU opens the period");
        Assert.That(p.CpuNapNs(Block, t + 100 * Us), Is.EqualTo(400 * Us));
    }

    [Test]
    public void Prefetch_waits_for_min_faults_migrations_to_the_block()
    {
        var p = new GpuResidencyPolicy(4, new GpuDriverCounters(), GpuPolicyMode.Uvm, new UvmPolicyOptions { PrefetchMinFaults = 2 });
        var faulted = default(BlockMask);
        faulted.Set(0);
        Assert.That(p.Prefetch(Block, faulted, default, All, true, 0).IsEmpty(), Is.True, "first fault migration");
        Assert.That(p.Prefetch(Block, faulted, default, All, true, 0).Count(), Is.EqualTo(15), "second: the big page");
        Assert.That(p.Prefetch(Block + Page.PmdSize, faulted, default, All, true, 0).IsEmpty(), Is.True, "counted per block");
    }

    [Test]
    public void First_touch_populates_the_block_only_when_the_gpu_is_the_preferred_location()
    {
        var faulted = default(BlockMask);
        faulted.Set(7);
        var plain = new GpuResidencyPolicy(4, new GpuDriverCounters(), GpuPolicyMode.Uvm);
        Assert.That(plain.Prefetch(Block, faulted, default, All, residentAnywhere: false, 0).Count(), Is.EqualTo(15));
        var preferred = new GpuResidencyPolicy(4, new GpuDriverCounters(), GpuPolicyMode.Uvm, new UvmPolicyOptions { GpuPreferred = true });
        Assert.That(preferred.Prefetch(Block, faulted, default, All, residentAnywhere: false, 0).Count(), Is.EqualTo(511));
        Assert.That(preferred.Prefetch(Block, faulted, default, All, residentAnywhere: true, 0).Count(), Is.EqualTo(15));
    }

    [Test]
    public void Uvm_evicts_past_its_chunk_budget()
    {
        var p = new GpuResidencyPolicy(8, new GpuDriverCounters(), GpuPolicyMode.Uvm, new UvmPolicyOptions { VramChunks = 3 });
        Assert.That(p.ChunkBudget, Is.EqualTo(3));
        Assert.That(p.MustEvict(2), Is.False);
        Assert.That(p.MustEvict(3), Is.True);
        var unbounded = new GpuResidencyPolicy(8, new GpuDriverCounters(), GpuPolicyMode.Uvm);
        Assert.That(unbounded.ChunkBudget, Is.EqualTo(8));
        Assert.That(unbounded.MustEvict(8), Is.True);
    }

    [Test]
    public void Switching_mode_starts_uvm_state_afresh_and_changes_the_replay_policy()
    {
        var counters = new GpuDriverCounters();
        var p = new GpuResidencyPolicy(4, counters, GpuPolicyMode.Uvm);
        for (int i = 0; i < 3; i++) p.RecordMigration(Block, Block + Page.Size, i % 2, i * 100 * Us, ThrashingCause.FaultMigration);
        Assert.That(p.Thrashing.IsThrashing(Block, 300 * Us), Is.True);
        p.Switch(GpuPolicyMode.Nouveau);
        Assert.That(p.Replay.Policy, Is.EqualTo(ReplayPolicy.Batch));
        Assert.That(p.Decide(Fault(Block), 300 * Us).Action, Is.EqualTo(FaultAction.MapInPlace));
        p.Switch(GpuPolicyMode.Uvm, new UvmPolicyOptions { ReplayPolicy = ReplayPolicy.Once });
        Assert.That(p.Thrashing.IsThrashing(Block, 300 * Us), Is.False);
        Assert.That(p.Replay.Policy, Is.EqualTo(ReplayPolicy.Once));
        Assert.That(p.Options.ReplayPolicy, Is.EqualTo(ReplayPolicy.Once));
    }
}
