using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.DeviceMemory;

/// <summary>
/// Hot-removal of a device-private range (migrate_device_range eviction + memunmap_pages) while a CPU
/// thread of the process faults on device pages of that very range (do_swap_page → migrate_to_ram):
/// each page comes back exactly once, by whichever side locks it first, its data intact; the range
/// is unplugged once every folio is gone; the invariants hold.
/// </summary>
public sealed class HotRemoveConcurrencyTests
{
    [Test]
    public void EvictAndRemoveRacingCpuFaultsOnItsPages_EveryPageBackOnceWithItsData([Values(0, 1, 2, 3)] int seed)
    {
        var rng = new Random(seed);
        for (int round = 0; round < 8; round++)
        {
            using var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20, LockValidation = true });
            var dev = new TestDevice(machine, DevicePageKind.Private, bytes: 8UL << 20, name: "priv");
            var p = machine.CreateProcess("app");
            const int pages = 96;
            ulong a = p.Mmap(pages * P, RW, PrivAnon);
            Fill(p, a, pages, seed: 100 * round);
            // Base pages carved from one free 2 MiB block: one busy piece, the rest of the range idle.
            Assert.That(dev.MigrateToDevice(p, a, pages), Is.EqualTo(pages));
            int start = rng.Next(pages), delay = rng.Next(0, 4000);
            Exception? cpuFailure = null;
            using var go = new Barrier(2);
            var cpu = new Thread(() =>
            {
                try
                {
                    go.SignalAndWait();
                    for (int k = 0; k < pages; k++)
                    {
                        int i = (start + k) % pages;
                        int v = p.Load<int>(a + (ulong)i * P);
                        if (v != 100 * round + i) throw new InvalidOperationException($"page {i}: {v}");
                    }
                }
                catch (Exception e) { cpuFailure = e; }
            });
            cpu.Start();
            go.SignalAndWait();
            Thread.SpinWait(delay);
            var e = MigrateDevice.EvictAndRemove(dev.Pgmap);
            cpu.Join();
            Assert.That(cpuFailure, Is.Null, cpuFailure?.ToString());
            // EBUSY only while a racing migrate_to_ram still held a folio: the removal completes after it.
            if (e == Errno.EBUSY) e = dev.Pgmap.Remove();
            Assert.That(e, Is.EqualTo(Errno.Ok), $"round {round}");
            Assert.That(dev.Pgmap.IsRemoved, Is.True);
            Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations), "each device page freed exactly once");
            for (int i = 0; i < pages; i++)
            {
                Assert.That(p.Mm.EntryAt(a + (ulong)i * P).Kind, Is.EqualTo(PteKind.Present));
                Assert.That(p.Load<int>(a + (ulong)i * P), Is.EqualTo(100 * round + i));
            }
            machine.CheckInvariants();
            p.Exit();
            machine.CheckInvariants();
        }
    }
}
