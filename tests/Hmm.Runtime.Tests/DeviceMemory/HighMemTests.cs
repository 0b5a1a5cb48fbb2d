using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.DeviceMemory;

/// <summary>kmap_local_page / copy_highpage: CPU access by pfn reaches system and coherent memory, never device-private memory (A.8).</summary>
public class HighMemTests
{
    private sealed class NullOps : IDevPagemapOps
    {
        public void PageFree(DevPagemap pgmap, ulong pfn) { }
        public VmFaultResult MigrateToRam(in VmFault vmf) => VmFaultResult.SigBus;
    }

    [Test]
    public void Cpu_copy_between_system_pages_moves_the_bytes()
    {
        using var machine = NewMachine();
        Assert.That(SystemPages.TryAllocateKernelPage(machine, out ulong a), Is.True);
        Assert.That(SystemPages.TryAllocateKernelPage(machine, out ulong b), Is.True);
        HighMem.Map(machine, a)[100] = 0x5a;
        HighMem.CopyPage(machine, b, a);
        Assert.That(HighMem.Map(machine, b)[100], Is.EqualTo(0x5a));
        SystemPages.PutKernelPage(machine, a);
        SystemPages.PutKernelPage(machine, b);
        machine.CheckInvariants();
    }

    [Test]
    public void Cpu_access_to_device_private_memory_is_a_kernel_bug_and_coherent_memory_is_reachable()
    {
        using var machine = NewMachine();
        Assert.That(DevPagemap.Create(machine, DevicePageKind.Private, 2 << 20, new object(), new NullOps(), out var priv), Is.EqualTo(Errno.Ok));
        Assert.That(DevPagemap.Create(machine, DevicePageKind.Coherent, 2 << 20, new object(), new NullOps(), out var coh), Is.EqualTo(Errno.Ok));
        var ex = Assert.Throws<KernelBugException>(() => HighMem.Map(machine, priv!.FirstPfn));
        Assert.That(ex!.Rule, Is.EqualTo("PAGE-R02"));
        Assert.Throws<KernelBugException>(() => HighMem.CopyPage(machine, coh!.FirstPfn, priv!.FirstPfn + 1));
        HighMem.Map(machine, coh!.FirstPfn)[0] = 7;
        Assert.That(coh.DeviceBytes(coh.FirstPfn)[0], Is.EqualTo(7), "coherent memory: the CPU and the device see the same bytes");
        machine.CheckInvariants();
    }
}
