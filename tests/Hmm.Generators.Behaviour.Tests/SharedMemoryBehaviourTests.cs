using Hmm.Generators.Behaviour.Tests.Drivers;
using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using NUnit.Framework;

namespace Hmm.Generators.Behaviour.Tests;

/// <summary>
/// The dmirror hooks: [OnMigrated] between migrate_vma_pages and finalize, the [AllocatePage]
/// substitute allocator, and device-level memory shared by several open files (HmmDriver.Memory).
/// </summary>
public sealed class SharedMemoryBehaviourTests
{
    private const ulong P = Page.Size;
    private Machine _machine = null!;
    private Process _process = null!;
    private SimDevice _device = null!;
    private SharedDevmem _memory = null!;

    [SetUp]
    public void SetUp()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 256L << 20 });
        _process = _machine.CreateProcess("app");
        _device = new SimDevice(_machine, "hmm_dmirror0");
        _memory = new SharedDevmem();
    }

    [TearDown]
    public void TearDown()
    {
        _process.Exit();
        _machine.CheckInvariants();
        _machine.Dispose();
    }

    private ulong MapWritten(Process process, int pages, Advice advice = Advice.NoHugePage)
    {
        ulong len = (ulong)pages * P;
        ulong map = process.Mmap(len + Page.PmdSize, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        ulong buf = (map + Page.PmdSize - 1) & ~(Page.PmdSize - 1);
        process.Madvise(buf, len, advice);
        for (int i = 0; i < pages; i++) process.Store(buf + ((ulong)i * P), 0xC000UL + (ulong)i);
        return buf;
    }

    private static void AssertData(Process process, ulong buf, int pages)
    {
        for (int i = 0; i < pages; i++)
            Assert.That(process.Load<ulong>(buf + ((ulong)i * P)), Is.EqualTo(0xC000UL + (ulong)i), $"page {i}");
    }

    private SharedFileDriver Open(Process process)
    {
        var file = new SharedFileDriver(_memory);
        Assert.That(file.Attach(_device, process), Is.EqualTo(Errno.Ok));
        return file;
    }

    [Test]
    public void OnMigrated_RunsUnderU_BeforeFinalize_ForEveryMovedEntry()
    {
        ulong buf = MapWritten(_process, 16);
        var file = Open(_process);

        Assert.That(file.MigrateToDevice(buf, buf + (16 * P), out long moved), Is.EqualTo(Errno.Ok));
        Assert.That(moved, Is.EqualTo(16));
        Assert.That(file.MovedPerCall, Is.EqualTo(new[] { 16 }), "one 2 MiB piece, every entry moved");
        Assert.That(file.KindsSeen, Is.All.EqualTo(PteKind.Migration), "still migration entries: finalize has not run");
        Assert.That(file.UHeldInCallback, Is.True);
        Assert.That(_process.Mm.EntryAt(buf).Kind, Is.EqualTo(PteKind.DevicePrivate), "finalized afterwards");

        // Back to system memory: the callback runs for that direction too.
        Assert.That(file.MigrateToSystem(buf, buf + (16 * P), out moved), Is.EqualTo(Errno.Ok));
        Assert.That(file.MovedPerCall, Is.EqualTo(new[] { 16, 16 }));
        AssertData(_process, buf, 16);
        file.Detach();
        Assert.That(_memory.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
    }

    [Test]
    public void OnMigrated_IsNotCalledForEntriesThatDidNotMove()
    {
        ulong buf = MapWritten(_process, 4);
        var file = Open(_process);
        Assert.That(file.MigrateToDevice(buf, buf + (4 * P), out _), Is.EqualTo(Errno.Ok));
        // Nothing of ours is in system memory any more: a second migration moves nothing.
        Assert.That(file.MigrateToDevice(buf, buf + (4 * P), out long moved), Is.EqualTo(Errno.Ok));
        Assert.That(moved, Is.Zero);
        Assert.That(file.MovedPerCall, Is.EqualTo(new[] { 4, 0 }));
        file.Detach();
        Assert.That(_memory.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
    }

    [Test]
    public void AllocatePage_RefusingABasePage_LeavesThatPageInSystemMemory()
    {
        ulong buf = MapWritten(_process, 8);
        var file = Open(_process);
        file.FailNextAllocation();

        Assert.That(file.MigrateToDevice(buf, buf + (8 * P), out long moved), Is.EqualTo(Errno.Ok));
        Assert.That(moved, Is.EqualTo(7), "the refused page is skipped, as FAIL_ALLOC skips it");
        Assert.That(_process.Mm.EntryAt(buf).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(_process.Mm.EntryAt(buf + P).Kind, Is.EqualTo(PteKind.DevicePrivate));
        Assert.That(file.RefusedAllocations, Is.EqualTo(1));
        Assert.That(file.Allocations, Is.EqualTo(7), "every destination went through the substitute allocator");
        AssertData(_process, buf, 8);
        file.Detach();
        Assert.That(_memory.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
    }

    [Test]
    public void AllocatePage_RefusingAFolio_FallsBackToBasePages()
    {
        ulong buf = MapWritten(_process, 512, Advice.HugePage);
        Assume.That(_process.Mm.EntryAt(buf).IsHuge, Is.True);
        var file = Open(_process);
        file.FailNextAllocation();

        Assert.That(file.MigrateToDevice(buf, buf + Page.PmdSize, out long moved), Is.EqualTo(Errno.Ok));
        Assert.That(moved, Is.EqualTo(512));
        Assert.That(file.LargeAllocationFallbacks, Is.EqualTo(1));
        Assert.That(file.Allocations, Is.EqualTo(512), "512 base pages from the substitute allocator");
        Assert.That(file.MigrateToSystem(buf, buf + Page.PmdSize, out moved), Is.EqualTo(Errno.Ok));
        Assert.That(moved, Is.EqualTo(512));
        AssertData(_process, buf, 512);
        file.Detach();
        Assert.That(_memory.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
    }

    [Test]
    public void AllocatePage_RefusingASystemPage_IsEnomem_AndThePageStaysOnTheDevice()
    {
        ulong buf = MapWritten(_process, 4);
        var file = Open(_process);
        Assert.That(file.MigrateToDevice(buf, buf + (4 * P), out _), Is.EqualTo(Errno.Ok));
        file.FailNextAllocation();

        Assert.That(file.MigrateToSystem(buf, buf + (4 * P), out long moved), Is.EqualTo(Errno.ENOMEM));
        Assert.That(moved, Is.Zero, "the first system page was refused: nothing was copied before it");
        Assert.That(_process.Mm.EntryAt(buf).Kind, Is.EqualTo(PteKind.DevicePrivate));
        AssertData(_process, buf, 4);   // CPU touches bring each page back through migrate_to_ram
        file.Detach();
        Assert.That(_memory.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
    }

    [Test]
    public void TwoOpenFiles_ShareOneDevicesMemory_AndACpuFaultGoesToTheFileThatMigrated()
    {
        var other = _machine.CreateProcess("other");
        ulong a = MapWritten(_process, 8);
        ulong b = MapWritten(other, 8);
        var fileA = Open(_process);
        var fileB = Open(other);
        Assert.That(_memory.Device, Is.SameAs(_device), "plugged into the first attached file's device");
        Assert.That(fileA.PgmapOwner, Is.SameAs(_memory), "dev_private_owner is the device, shared by its files");

        Assert.That(fileA.MigrateToDevice(a, a + (8 * P), out _), Is.EqualTo(Errno.Ok));
        Assert.That(fileB.MigrateToDevice(b, b + (8 * P), out _), Is.EqualTo(Errno.Ok));
        Assert.That(_memory.DeviceChunkCount, Is.EqualTo(1), "both files allocate from the one device's chunk");
        ulong pfnA = _process.Mm.EntryAt(a).Pfn;
        Assert.That(_memory.DevicePageUser(pfnA), Is.SameAs(fileA));

        // A CPU touch of B's page: migrate_to_ram is handed to B, not A.
        Assert.That(other.Load<ulong>(b), Is.EqualTo(0xC000UL));
        Assert.That(fileB.PagesMigratedToSystem, Is.EqualTo(1));
        Assert.That(fileA.PagesMigratedToSystem, Is.Zero);

        // Removing the device's memory evicts both processes' pages with their data.
        fileA.Detach();
        fileB.Detach();
        Assert.That(_memory.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
        Assert.That(_memory.DeviceChunkCount, Is.Zero);
        AssertData(_process, a, 8);
        AssertData(other, b, 8);
        Assert.That(_memory.DevicePageUser(pfnA), Is.Null, "the page is no longer device memory");
        other.Exit();
    }

    [Test]
    public void TheGeneratedAllocator_RecordsTheFileOfEveryPageItTakesInBulk()
    {
        ulong buf = MapWritten(_process, 32);
        var file = new PlainSharedFileDriver(_memory);
        Assert.That(file.Attach(_device, _process), Is.EqualTo(Errno.Ok));

        Assert.That(file.MigrateToDevice(buf, buf + (32 * P), out long moved), Is.EqualTo(Errno.Ok));
        Assert.That(moved, Is.EqualTo(32));
        Assert.That(_memory.DeviceAllocations, Is.EqualTo(32));
        for (int i = 0; i < 32; i++)
            Assert.That(_memory.DevicePageUser(_process.Mm.EntryAt(buf + ((ulong)i * P)).Pfn), Is.SameAs(file), $"page {i}");
        // A CPU touch goes to this file's generated migrate_to_ram.
        Assert.That(_process.Load<ulong>(buf + (5 * P)), Is.EqualTo(0xC005UL));
        Assert.That(file.PagesMigratedToSystem, Is.EqualTo(1));
        Assert.That(file.MigrateToSystem(buf, buf + (32 * P), out moved), Is.EqualTo(Errno.Ok));
        Assert.That(moved, Is.EqualTo(31));
        AssertData(_process, buf, 32);
        Assert.That(Interlocked.Read(ref _memory.Freed), Is.EqualTo(32), "every page back through the device's page_free");
        file.Detach();
        Assert.That(_memory.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
    }
}
