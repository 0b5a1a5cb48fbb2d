using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Properties;

/// <summary>Shrunk sequences the device-memory property test found, kept as plain deterministic tests.</summary>
public class MmDeviceRegressionTests
{
    /// <summary>
    /// Migrating a hole of a PROT_NONE anonymous VMA to device memory and back (or inserting a
    /// coherent page there) built an ordinary accessible PTE: a load then succeeded instead of
    /// SIGSEGV. Linux builds these entries from vma->vm_page_prot.
    /// </summary>
    [Test]
    public void MigrationIntoProtNoneVmaKeepsProtNone()
    {
        using (var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 }))
        {
            var dev = new TestDevice(machine, DevicePageKind.Private, 8UL << 20);
            var coh = new TestDevice(machine, DevicePageKind.Coherent, 8UL << 20, "coh");
            var p = machine.CreateProcess("app");
            ulong buf = p.Mmap(4 * 4096, Prot.None, MapFlags.Private | MapFlags.Anonymous);
            Assert.That(dev.MigrateToDevice(p, buf, 2), Is.EqualTo(2));
            Assert.That(dev.MigrateToSystem(p, buf, 2), Is.EqualTo(2));
            Assert.That(coh.MigrateToDevice(p, buf + 2 * 4096, 2), Is.EqualTo(2));
            Assert.Throws<SegmentationFault>(() => p.Load<byte>(buf));
            Assert.Throws<SegmentationFault>(() => p.Load<byte>(buf + 2 * 4096));
            p.Mprotect(buf, 4 * 4096, Prot.Read | Prot.Write);
            Assert.That(p.Load<byte>(buf + 3 * 4096), Is.Zero);
            p.Store<byte>(buf, 1);
            machine.CheckInvariants();
            p.Exit();
            Assert.That(machine.UsedPages, Is.Zero);
            Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
            Assert.That(coh.PageFrees, Is.EqualTo(coh.Allocations));
        }
        MmRunner.Run(new MmCase(true, new Op[]
        {
            new(OpKind.Mmap, 38218239, 1406917090, 2122617491, 2005283136, 1043945978),
            new(OpKind.Migrate, 1333638323, 489064429, 2016583541, 1437584211, 544578676),
            new(OpKind.Migrate, 1860473839, 1359736123, 206612297, 1907649293, 137012022),
            new(OpKind.Read, 789059452, 972078775, 1343121615, 1798798205, 453287635),
        }, Devices: true));
    }
}
