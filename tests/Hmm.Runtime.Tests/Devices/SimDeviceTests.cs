using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Devices;

/// <summary>
/// The device half: loads and stores of logical device threads through the device MMU, the
/// fault → service → replay cycle, cancel, fault-buffer overflow, and the simulated-time and
/// counter side effects (drivers.md A.2–A.4, C.1).
/// </summary>
public class SimDeviceTests
{
    private Machine _machine = null!;
    private Process _process = null!;

    [SetUp]
    public void SetUp()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 });
        _process = _machine.CreateProcess("app");
    }

    [TearDown]
    public void TearDown()
    {
        if (!_process.HasExited) _process.Exit();
        _machine.CheckInvariants();
        _machine.Dispose();
    }

    // A.3: a device load misses, the fault is serviced through hmm_range_fault into the device
    // page table, the replay re-executes the load and it sees the CPU's data.
    [Test]
    public void DeviceLoadsFaultAreServicedAndReplayedWithTheCpuData()
    {
        ulong buf = _process.Mmap(8 * Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        for (int i = 0; i < 8; i++) _process.Store(buf + ((ulong)i * Page.Size) + 16, 0x1000UL + (ulong)i);
        var device = new SimDevice(_machine, "gpu0");
        using var driver = new MirrorDriver(device, _process);
        var ops = new DeviceOp[8];
        for (int i = 0; i < 8; i++) ops[i] = new DeviceOp(buf + ((ulong)i * Page.Size) + 16, DeviceAccess.Read);
        device.Executor.LaunchOnePerThread(driver.Instance, client: 1, ops);

        Assert.That(device.Run(), Is.EqualTo(8), "every thread faults on first access");
        Assert.That(device.Faults.Count, Is.EqualTo(8));
        Assert.That(driver.ServiceFaults(), Is.EqualTo(8));
        Assert.That(device.Run(), Is.Zero, "after the replay every load hits");
        for (int t = 0; t < 8; t++)
        {
            Assert.That(device.Executor.StateOf(t), Is.EqualTo(DeviceThreadState.Done));
            Assert.That(device.Executor.ResultOf(t), Is.EqualTo(0x1000UL + (ulong)t));
        }
        Assert.That(driver.PagesServiced, Is.EqualTo(8), "8 consecutive pages coalesce into one serviced range");
        Assert.That(device.Meters.Faults, Is.EqualTo(8));
        Assert.That(device.Meters.FaultBatches, Is.EqualTo(1));
        Assert.That(device.Meters.Replays, Is.EqualTo(1));
        Assert.That(device.Clock.Now, Is.GreaterThanOrEqualTo(device.Options.Costs.FaultBatchServiceNs(8) + device.Options.Costs.ReplayNs));
    }

    // A.3 step 4: a write fault asks for a writable page (COW broken on the CPU side too).
    [Test]
    public void DeviceStoresReachTheProcessMemory()
    {
        ulong buf = _process.Mmap(4 * Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        var device = new SimDevice(_machine, "gpu0");
        using var driver = new MirrorDriver(device, _process);
        var ops = new DeviceOp[4];
        for (int i = 0; i < 4; i++) ops[i] = new DeviceOp(buf + ((ulong)i * Page.Size) + 8, DeviceAccess.Write, 77UL + (ulong)i);
        device.Executor.LaunchOnePerThread(driver.Instance, 1, ops);
        driver.RunToCompletion();
        for (int i = 0; i < 4; i++) Assert.That(_process.Load<ulong>(buf + ((ulong)i * Page.Size) + 8), Is.EqualTo(77UL + (ulong)i));
        Assert.That(device.Executor.Count(DeviceThreadState.Done), Is.EqualTo(4));
    }

    // A.4: a fault that cannot be serviced (no VMA) is cancelled; its thread fails (the channel is killed).
    [Test]
    public void AnUnserviceableFaultIsCancelled()
    {
        ulong buf = _process.Mmap(Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        _process.Munmap(buf, Page.Size);
        var device = new SimDevice(_machine, "gpu0");
        using var driver = new MirrorDriver(device, _process);
        device.Executor.LaunchOnePerThread(driver.Instance, 1, [new DeviceOp(buf, DeviceAccess.Read)]);
        device.Run();
        driver.ServiceFaults();
        Assert.That(device.Executor.StateOf(0), Is.EqualTo(DeviceThreadState.Failed));
        Assert.That(device.Meters.Cancels, Is.EqualTo(1));
        Assert.That(device.Meters.Replays, Is.Zero, "nothing succeeded, so no replay");
    }

    // A.2 / C.1: a full ring drops new entries (overflow); their threads stay parked, re-fault
    // after the replay, and everything completes.
    [Test]
    public void FaultBufferOverflowDropsEntriesThatRefaultAfterReplay()
    {
        ulong buf = _process.Mmap(10 * Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous | MapFlags.Populate);
        var device = new SimDevice(_machine, "gpu0", new SimDeviceOptions { FaultBufferEntries = 4 });
        using var driver = new MirrorDriver(device, _process);
        var ops = new DeviceOp[10];
        for (int i = 0; i < 10; i++) ops[i] = new DeviceOp(buf + ((ulong)i * Page.Size), DeviceAccess.Read);
        device.Executor.LaunchOnePerThread(driver.Instance, 1, ops);
        Assert.That(device.Run(), Is.EqualTo(10));
        Assert.That(device.Faults.Count, Is.EqualTo(4));
        Assert.That(device.Faults.Overflows, Is.EqualTo(6));
        Assert.That(device.Faults.OverflowPending, Is.True);
        driver.RunToCompletion();
        Assert.That(device.Executor.Count(DeviceThreadState.Done), Is.EqualTo(10));
        Assert.That(device.Faults.OverflowPending, Is.False);
    }

    // C.1 duplicates: 10,000 threads on the same 16 pages produce 16 serviced pages.
    [Test]
    public void TenThousandThreadsOnSixteenPagesServiceSixteenPages()
    {
        ulong buf = _process.Mmap(16 * Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        var device = new SimDevice(_machine, "gpu0", new SimDeviceOptions { FaultBufferEntries = 16384 });
        using var driver = new MirrorDriver(device, _process, batchSize: 16384);
        var ops = new DeviceOp[10_000];
        for (int i = 0; i < ops.Length; i++) ops[i] = new DeviceOp(buf + ((ulong)(i % 16) * Page.Size) + ((ulong)(i % 64) * 8), DeviceAccess.Read);
        device.Executor.LaunchOnePerThread(driver.Instance, 1, ops);
        Assert.That(device.Run(), Is.EqualTo(10_000));
        Assert.That(driver.ServiceFaults(), Is.EqualTo(10_000));
        Assert.That(driver.PagesServiced, Is.EqualTo(16));
        Assert.That(device.Run(), Is.Zero);
        Assert.That(device.Executor.Count(DeviceThreadState.Done), Is.EqualTo(10_000));
        Assert.That(driver.Table.MappedPages, Is.EqualTo(16));
    }

    // A peer-aperture entry (another device's memory at a bus address) is decoded through the
    // device's IPeerAperture: a bus page it decodes hits that page, one it does not (or no decoder
    // at all) is a fatal fault, never a silent access to a host pfn of the same number.
    [Test]
    public void PeerApertureEntriesAreDecodedThroughThePeerAperture()
    {
        const ulong BusPage = 0xE_0001, Backing = 42;
        var device = new SimDevice(_machine, "gpu0");
        var table = new DevicePageTable();
        int instance = device.Attach(table);
        const ulong Va = 0x10_0000;
        Assert.That(table.Install(Va, [Hmm.Runtime.Mirror.HmmPfn.Make(BusPage, write: true)], DeviceAperture.Peer), Is.EqualTo(Errno.Ok));
        Assert.That(table.Install(Va + Page.Size, [Hmm.Runtime.Mirror.HmmPfn.Make(BusPage + 1, write: true)], DeviceAperture.Peer), Is.EqualTo(Errno.Ok));

        Assert.That(device.Translate(instance, Va, DeviceAccess.Read, out _), Is.EqualTo(DeviceMmuResult.IommuFault), "no decoder");
        device.PeerAperture = new OneBusPage(BusPage << Page.Shift, Backing);
        Assert.That(device.Translate(instance, Va, DeviceAccess.Write, out ulong pfn), Is.EqualTo(DeviceMmuResult.Hit));
        Assert.That(pfn, Is.EqualTo(Backing));
        Assert.That(device.Translate(instance, Va + Page.Size, DeviceAccess.Read, out _), Is.EqualTo(DeviceMmuResult.IommuFault), "a bus page nothing decodes");
        device.Detach(instance);
    }

    private sealed class OneBusPage(ulong bus, ulong pfn) : IPeerAperture
    {
        public bool ResolveBus(ulong busAddress, out ulong resolved)
        {
            resolved = busAddress == bus ? pfn : 0;
            return busAddress == bus;
        }
    }

    // A.5 / HMM-R07: a CPU munmap invalidates the device mirror; the next device access faults
    // and, with nothing mapped any more, is cancelled.
    [Test]
    public void CpuMunmapInvalidatesTheDeviceMirror()
    {
        ulong buf = _process.Mmap(2 * Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        _process.Store(buf, 5UL);
        var device = new SimDevice(_machine, "gpu0");
        using var driver = new MirrorDriver(device, _process);
        device.Executor.LaunchOnePerThread(driver.Instance, 1, [new DeviceOp(buf, DeviceAccess.Read)]);
        driver.RunToCompletion();
        Assert.That(device.Executor.ResultOf(0), Is.EqualTo(5UL));
        Assert.That(driver.Table.Translate(buf, write: false, out _), Is.EqualTo(DeviceMmuResult.Hit));

        _process.Munmap(buf, 2 * Page.Size);
        Assert.That(driver.Table.Translate(buf, write: false, out _), Is.EqualTo(DeviceMmuResult.Miss));
        Assert.That(device.Meters.TlbInvalidations, Is.GreaterThanOrEqualTo(1));
        device.Executor.LaunchOnePerThread(driver.Instance, 1, [new DeviceOp(buf, DeviceAccess.Read)]);
        device.Run();
        driver.ServiceFaults();
        Assert.That(device.Executor.StateOf(0), Is.EqualTo(DeviceThreadState.Failed));
    }

    // Copy engine: every PCIe transfer charges the bandwidth curve (drivers.md E row 3).
    [Test]
    public void CopiesChargeTransferTime()
    {
        var device = new SimDevice(_machine, "gpu0");
        ulong buf = _process.Mmap(2 * Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        _process.Store(buf, 1);
        _process.Store(buf + Page.Size, 2);
        ulong a = _process.Mm.EntryAt(buf).Pfn, b = _process.Mm.EntryAt(buf + Page.Size).Pfn;
        long before = device.Clock.Now;
        device.Copy.Copy([new PageCopy(a, b)]);
        Assert.That(device.Clock.Now - before, Is.EqualTo(device.Options.Costs.TransferNs(Page.Size)));
        Assert.That(device.Meters.BytesCopied, Is.EqualTo(Page.Size));
        Assert.That(_process.Load<int>(buf + Page.Size), Is.EqualTo(1));
    }

    // A DMA engine chains descriptors: contiguous page copies move as one transfer (one charge
    // for all their bytes), and every byte still lands where it should.
    [Test]
    public void ContiguousCopiesAreCoalescedAndEveryPageArrives()
    {
        var device = new SimDevice(_machine, "gpu0");
        ulong src = _process.Mmap(4 * Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous | MapFlags.Populate);
        ulong dst = _process.Mmap(4 * Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous | MapFlags.Populate);
        for (int i = 0; i < 4; i++) _process.Store(src + ((ulong)i * Page.Size) + 40, 900 + i);
        var copies = new PageCopy[4];
        for (int i = 0; i < 4; i++)
            copies[i] = new PageCopy(_process.Mm.EntryAt(src + ((ulong)i * Page.Size)).Pfn, _process.Mm.EntryAt(dst + ((ulong)(3 - i) * Page.Size)).Pfn);
        long before = device.Clock.Now;
        device.Copy.Copy(copies);
        for (int i = 0; i < 4; i++) Assert.That(_process.Load<int>(dst + ((ulong)(3 - i) * Page.Size) + 40), Is.EqualTo(900 + i));
        Assert.That(device.Copy.PagesCopied, Is.EqualTo(4));
        Assert.That(device.Clock.Now - before, Is.EqualTo(device.Options.Costs.TransferNs(4 * Page.Size)), "one batch is charged as one transfer of all its bytes");

        // Populated in order, both ranges are physically ascending: a contiguous run merges into
        // one transfer and still lands page for page.
        ulong s0 = _process.Mm.EntryAt(src).Pfn, d0 = _process.Mm.EntryAt(dst).Pfn;
        Assert.That(_process.Mm.EntryAt(src + (3 * Page.Size)).Pfn, Is.EqualTo(s0 + 3));
        Assert.That(_process.Mm.EntryAt(dst + (3 * Page.Size)).Pfn, Is.EqualTo(d0 + 3));
        for (int i = 0; i < 4; i++) copies[i] = new PageCopy(s0 + (ulong)i, d0 + (ulong)i);
        device.Copy.Copy(copies);
        for (int i = 0; i < 4; i++) Assert.That(_process.Load<int>(dst + ((ulong)i * Page.Size) + 40), Is.EqualTo(900 + i));
    }
}
