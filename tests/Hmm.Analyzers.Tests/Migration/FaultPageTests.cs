using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Migration;

/// <summary>HMM1033 (MIG-R08): migrate_to_ram passes the faulting page to Setup.</summary>
public sealed class FaultPageTests
{
    private const string Chunk = """
        class C : IDevPagemapOps
        {
            public void PageFree(DevPagemap pgmap, ulong pfn) { }

        """;

    [Test]
    public Task Hand_written_migrate_to_ram_without_fault_page_fires() => HmmVerifier.VerifyAsync(Chunk + """
            public VmFaultResult MigrateToRam(in VmFault vmf)
            {
                using var args = new MigrateVma { Vma = vmf.Vma, Start = vmf.Address, End = vmf.Address + 4096, Src = new ulong[1], Dst = new ulong[1] };
                if ({|HMM1033:MigrateVma.Setup(args)|} != Errno.Ok) return VmFaultResult.SigBus;
                MigrateVma.Pages(args);
                MigrateVma.Finalize(args);
                return VmFaultResult.Ok;
            }
        }
        """);

    [Test]
    public Task Dsl_migrate_to_ram_without_fault_page_fires() => HmmVerifier.VerifyAsync("""
        [HmmDriver("d")]
        partial class G
        {
            [OnMigrateToRam] VmFaultResult ToRam(in VmFault vmf)
            {
                var args = new MigrateVma { Vma = vmf.Vma, Start = vmf.Address, End = vmf.Address + 4096, Src = new ulong[1], Dst = new ulong[1], PgmapOwner = this };
                var e = {|HMM1033:MigrateVma.Setup(args)|};
                if (e != Errno.Ok) return VmFaultResult.SigBus;
                MigrateVma.Pages(args);
                MigrateVma.Finalize(args);
                return VmFaultResult.Ok;
            }
        }
        """);

    [Test]
    public Task Forwarded_migrate_to_ram_helper_without_fault_page_fires() => HmmVerifier.VerifyAsync(Chunk + """
            public VmFaultResult MigrateToRam(in VmFault vmf) => Device.Evict(vmf);
            public Dev Device { get; } = new();
        }
        class Dev
        {
            public VmFaultResult Evict(in VmFault vmf) => Migrate(vmf);
            private VmFaultResult Migrate(in VmFault vmf)
            {
                MigrateVma args;
                args = new MigrateVma { Vma = vmf.Vma, Start = vmf.Address, End = vmf.Address + 4096, Src = new ulong[1], Dst = new ulong[1] };
                if ({|HMM1033:MigrateVma.Setup(args)|} != Errno.Ok) return VmFaultResult.SigBus;
                MigrateVma.Finalize(args);
                return VmFaultResult.Ok;
            }
        }
        """);

    [Test]
    public Task Fault_page_in_the_initializer_is_silent() => HmmVerifier.VerifyAsync(Chunk + """
            public VmFaultResult MigrateToRam(in VmFault vmf)
            {
                using var args = new MigrateVma { Vma = vmf.Vma, Start = vmf.Address, End = vmf.Address + 4096, Src = new ulong[1], Dst = new ulong[1], FaultPage = vmf.Page };
                if (MigrateVma.Setup(args) != Errno.Ok) return VmFaultResult.SigBus;
                MigrateVma.Pages(args);
                MigrateVma.Finalize(args);
                return VmFaultResult.Ok;
            }
        }
        """);

    [Test]
    public Task Fault_page_assigned_later_is_silent() => HmmVerifier.VerifyAsync(Chunk + """
            public VmFaultResult MigrateToRam(in VmFault vmf)
            {
                using var args = new MigrateVma { Vma = vmf.Vma, Start = vmf.Address, End = vmf.Address + 4096, Src = new ulong[1], Dst = new ulong[1] };
                args.FaultPage = vmf.Page;
                if (MigrateVma.Setup(args) != Errno.Ok) return VmFaultResult.SigBus;
                MigrateVma.Pages(args);
                MigrateVma.Finalize(args);
                return VmFaultResult.Ok;
            }
        }
        """);

    [Test]
    public Task Migration_outside_migrate_to_ram_is_silent() => HmmVerifier.VerifyAsync("""
        class D
        {
            private AddressSpace _mm = null!;
            public void ToDevice(ulong a)
            {
                _mm.MmapLock.ReadLock();
                try
                {
                    using var args = new MigrateVma { Vma = _mm.FindVma(a), Start = a, End = a + 4096, Src = new ulong[1], Dst = new ulong[1] };
                    if (MigrateVma.Setup(args) != Errno.Ok) return;
                    MigrateVma.Pages(args);
                    MigrateVma.Finalize(args);
                }
                finally { _mm.MmapLock.ReadUnlock(); }
            }
        }
        """);
}
