using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.DeviceMemory;

/// <summary>
/// <see cref="DevPagemap.InitPages"/>: zone_device_page_init for a run of consecutive free base
/// pages at once (issue 13, the generated allocator's per-2 MiB init): the same state as one
/// <see cref="DevPagemap.InitPage"/> per page, and MIG-R10 before anything changes.
/// </summary>
public class DevPagemapRunInitTests
{
    private sealed class NullOps : IDevPagemapOps
    {
        public void PageFree(DevPagemap pgmap, ulong pfn) { }
        public VmFaultResult MigrateToRam(in VmFault vmf) => VmFaultResult.SigBus;
    }

    [Test]
    public void A_run_is_initialised_as_one_init_page_per_page_would()
    {
        using var machine = NewMachine();
        Assert.That(DevPagemap.Create(machine, DevicePageKind.Private, 4UL << 20, new object(), new NullOps(), out var pg), Is.EqualTo(Errno.Ok));
        var pgmap = pg!;
        ulong first = pgmap.FirstPfn + 3;
        pgmap.InitPages(first, Page.PmdPages);   // crosses into the second 2 MiB block
        ulong other = pgmap.FirstPfn + 1000;
        pgmap.InitPage(other);
        var f = machine.Frames;
        for (ulong pfn = first; pfn < first + Page.PmdPages; pfn++)
        {
            Assert.That((f.Flags(pfn), f.RefCount(pfn), f.Order(pfn), f.MapCount(pfn)), Is.EqualTo((f.Flags(other), 1, (byte)0, 0)), $"pfn 0x{pfn:x}");
        }
        Assert.That(f.RefCount(first - 1), Is.Zero, "the page before the run untouched");
        Assert.That(f.RefCount(first + Page.PmdPages), Is.Zero, "the page after the run untouched");
        Assert.That(pgmap.PagesInUse, Is.EqualTo(Page.PmdPages + 1));
        // Release them all (refcount 1 → 0 → page_free), so the pagemap can go.
        for (ulong pfn = first; pfn < first + Page.PmdPages; pfn++) { machine.UnlockPage(pfn); machine.PutPage(pfn); }
        machine.UnlockPage(other);
        machine.PutPage(other);
        Assert.That(pgmap.Remove(), Is.EqualTo(Errno.Ok), "every live-folio reference of the run was dropped");
        machine.CheckInvariants();
    }

    [Test]
    public void A_run_holding_a_page_in_use_throws_MIG_R10_and_changes_nothing()
    {
        using var machine = NewMachine();
        Assert.That(DevPagemap.Create(machine, DevicePageKind.Private, 2UL << 20, new object(), new NullOps(), out var pg), Is.EqualTo(Errno.Ok));
        var pgmap = pg!;
        ulong busy = pgmap.FirstPfn + 10;
        pgmap.InitPage(busy);
        var ex = Assert.Throws<KernelBugException>(() => pgmap.InitPages(pgmap.FirstPfn, 64));
        Assert.That(ex!.Rule, Is.EqualTo("MIG-R10"));
        Assert.That(pgmap.PagesInUse, Is.EqualTo(1), "no page of the run was initialised");
        Assert.Throws<ArgumentOutOfRangeException>(() => pgmap.InitPages(pgmap.FirstPfn + 500, 64), "a run past the end of the range");
        Assert.Throws<ArgumentOutOfRangeException>(() => pgmap.InitPages(pgmap.FirstPfn, 0));
        machine.UnlockPage(busy);
        machine.PutPage(busy);
        Assert.That(pgmap.Remove(), Is.EqualTo(Errno.Ok));
        machine.CheckInvariants();
    }
}
