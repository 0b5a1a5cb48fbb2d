using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Mm;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.DeviceMemory;

/// <summary>
/// get_dev_pagemap / put_dev_pagemap (reference A.8, pgmap->ref): a reference on another
/// driver's pagemap keeps its provider plugged until it is dropped.
/// </summary>
public class DevPagemapReferenceTests
{
    private sealed class NullOps : IDevPagemapOps
    {
        public void PageFree(DevPagemap pgmap, ulong pfn) { }
        public VmFaultResult MigrateToRam(in VmFault vmf) => VmFaultResult.SigBus;
    }

    [Test]
    public void Get_holds_the_provider_until_put()
    {
        using var machine = NewMachine();
        Assert.That(DevPagemap.Create(machine, DevicePageKind.Private, 2 << 20, new object(), new NullOps(), out var pgmap), Is.EqualTo(Errno.Ok));
        var held = DevPagemap.Get(machine, pgmap!.FirstPfn + 3);
        Assert.That(held, Is.SameAs(pgmap));
        Assert.That(pgmap.Remove(), Is.EqualTo(Errno.EBUSY), "a held pagemap reference keeps the range plugged");
        Assert.That(pgmap.IsRemoved, Is.False);
        Assert.That(DevPagemap.Get(machine, pgmap.FirstPfn), Is.Null, "no new reference once removal started (percpu_ref_tryget_live)");
        held!.Put();
        Assert.That(pgmap.Remove(), Is.EqualTo(Errno.Ok));
        Assert.That(pgmap.IsRemoved, Is.True);
        machine.CheckInvariants();
    }

    [Test]
    public void Get_of_system_memory_is_null_and_an_extra_put_is_a_kernel_bug()
    {
        using var machine = NewMachine();
        Assert.That(DevPagemap.Get(machine, 5), Is.Null, "system memory has no pagemap");
        Assert.That(DevPagemap.Create(machine, DevicePageKind.Coherent, 2 << 20, new object(), new NullOps(), out var pgmap), Is.EqualTo(Errno.Ok));
        var held = DevPagemap.Get(machine, pgmap!.FirstPfn);
        Assert.That(held, Is.Not.Null);
        held!.Put();
        var ex = Assert.Throws<KernelBugException>(() => pgmap.Put());
        Assert.That(ex!.Rule, Is.EqualTo("PAGE-R01"));
        machine.CheckInvariants();
    }
}
