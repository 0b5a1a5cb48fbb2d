using Hmm.Generators.Behaviour.Tests.Drivers;
using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;

namespace Hmm.Generators.Behaviour.Tests;

/// <summary>Generated mirrors (each MirrorSync mode) against the runtime, compared with the hand-written MirrorDriver.</summary>
public sealed class MirrorBehaviourTests
{
    private const ulong P = Page.Size;
    private Machine _machine = null!;
    private Process _process = null!;

    [SetUp]
    public void SetUp()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 256L << 20 });
        _process = _machine.CreateProcess("app");
    }

    [TearDown]
    public void TearDown()
    {
        _process.Exit();
        _machine.CheckInvariants();
        _machine.Dispose();
    }

    private ulong MapWritten(int pages)
    {
        ulong buf = _process.Mmap((ulong)pages * P, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        for (int i = 0; i < pages; i++) _process.Store(buf + ((ulong)i * P), 0xA000UL + (ulong)i);
        return buf;
    }

    private static DeviceTranslation[] Snapshot(DevicePageTable table, ulong buf, int pages)
    {
        var result = new DeviceTranslation[pages];
        for (int i = 0; i < pages; i++) table.Lookup(buf + ((ulong)i * P), out result[i]);
        return result;
    }

    [Test]
    public void MirrorFault_ProgramsTheSameDeviceTableAsTheHandWrittenDriver()
    {
        ulong buf = MapWritten(16);
        var reference = new MirrorDriver(new SimDevice(_machine, "ref"), _process);
        var driver = new SeqMirror();
        Assert.That(driver.Attach(new SimDevice(_machine, "gen"), _process), Is.EqualTo(Errno.Ok));

        Assert.That(reference.Fault(new FaultRange(reference.Instance, buf, buf + (16 * P), Write: true, Atomic: false, PrefetchOnly: false)), Is.EqualTo(Errno.Ok));
        Assert.That(driver.Fault(buf, buf + (16 * P), write: true), Is.EqualTo(Errno.Ok));

        Assert.That(Snapshot(driver.DeviceTable, buf, 16), Is.EqualTo(Snapshot(reference.Table, buf, 16)));
        Assert.That(driver.DeviceTable.Lookup(buf, out var t), Is.True);
        Assert.That(t.Writable, Is.True);
        Assert.That(driver.PagesMirrored, Is.EqualTo(reference.PagesServiced));
        Assert.That(driver.CallbackMapped, Is.EqualTo(16), "the [OnMirrorFault] callback saw the snapshot");
        reference.Dispose();
        driver.Detach();
        Assert.That(driver.Released, Is.True, "[OnRelease] ran on detach");
        Assert.That(driver.IsAttached, Is.False);
    }

    [Test]
    public void FaultOnUnmappedAddress_ReturnsEfault_AndMapsNothing()
    {
        ulong buf = MapWritten(1);
        _process.Munmap(buf, P);
        var driver = new SeqMirror();
        driver.Attach(new SimDevice(_machine, "gen"), _process);
        Assert.That(driver.Fault(buf, buf + P, write: false), Is.EqualTo(Errno.EFAULT));
        Assert.That(driver.PagesMirrored, Is.Zero);
        Assert.That(new SeqMirror().Fault(buf, buf + P, false), Is.EqualTo(Errno.EINVAL), "not attached");
        driver.Detach();
    }

    // The zero page is mapped read-only; a write fault breaks COW inside hmm_range_fault, whose
    // CLEAR invalidation bumps the sequence: -EBUSY, and the retry maps the new page writable.
    [Test]
    public void InvalidationDuringFault_IsRetried()
    {
        ulong buf = _process.Mmap(P, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        _ = _process.Load<ulong>(buf);
        var driver = new SeqMirror();
        driver.Attach(new SimDevice(_machine, "gen"), _process);

        Assert.That(driver.Fault(buf, buf + P, write: true), Is.EqualTo(Errno.Ok));

        Assert.That(driver.FaultRetries, Is.GreaterThanOrEqualTo(1), "the COW invalidation forced a retry");
        Assert.That(driver.DeviceTable.Lookup(buf, out var t) && t.Writable, Is.True);
        Assert.That(t.Frame, Is.EqualTo(_process.Mm.EntryAt(buf).Pfn), "the device maps the page the CPU now maps");
        driver.Detach();
    }

    [Test]
    public void Munmap_InvalidatesTheDeviceMapping_ThroughTheTrampoline()
    {
        ulong buf = MapWritten(4);
        var driver = new SeqMirror();
        driver.Attach(new SimDevice(_machine, "gen"), _process);
        driver.Fault(buf, buf + (4 * P), write: false);
        long before = driver.Invalidations;

        _process.Munmap(buf, 4 * P);

        Assert.That(driver.Invalidations, Is.GreaterThan(before));
        Assert.That(driver.CallbackInvalidations, Is.GreaterThan(0), "[OnInvalidate] ran under U");
        Assert.That(driver.DeviceTable.Lookup(buf, out _), Is.False);
        driver.Detach();
    }

    [Test]
    public void RangeLockAndRangeMonitorModes_MapLikeSequenceRetry_AndRetryOnCow()
    {
        ulong buf = MapWritten(8);
        ulong zero = _process.Mmap(P, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        _ = _process.Load<ulong>(zero);
        var seq = new SeqMirror();
        var locked = new RangeLockMirror();
        var monitored = new RangeMonitorMirror();
        seq.Attach(new SimDevice(_machine, "seq"), _process);
        locked.Attach(new SimDevice(_machine, "lock"), _process);
        monitored.Attach(new SimDevice(_machine, "mon"), _process);

        Assert.That(seq.Fault(buf, buf + (8 * P), false), Is.EqualTo(Errno.Ok));
        Assert.That(locked.Fault(buf, buf + (8 * P), false), Is.EqualTo(Errno.Ok));
        Assert.That(monitored.Fault(buf, buf + (8 * P), false), Is.EqualTo(Errno.Ok));
        Assert.That(Snapshot(locked.DeviceTable, buf, 8), Is.EqualTo(Snapshot(seq.DeviceTable, buf, 8)));
        Assert.That(Snapshot(monitored.DeviceTable, buf, 8), Is.EqualTo(Snapshot(seq.DeviceTable, buf, 8)));

        Assert.That(monitored.Fault(zero, zero + P, write: true), Is.EqualTo(Errno.Ok));
        Assert.That(monitored.FaultRetries, Is.GreaterThanOrEqualTo(1), "the monitor saw the COW invalidation");
        Assert.That(locked.Fault(zero, zero + P, write: true), Is.EqualTo(Errno.Ok));
        Assert.That(locked.DeviceTable.Lookup(zero, out var t) && t.Writable, Is.True);
        Assert.That(monitored.DeviceTable.Lookup(zero, out var m) && m.Frame == t.Frame, Is.True);
        seq.Detach();
        locked.Detach();
        monitored.Detach();
    }
}
