using Hmm.Samples.Mlx5;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Mlx5;

/// <summary>
/// Issue 14, acceptance 2 (F.2.5): concurrent invalidations and NIC faults on the same pages, on real
/// threads with the lock validator on (the testbed's machine validates locks): two RDMA writer/reader
/// threads with faults serviced on the EQ workers, and a thread forking the server without pause
/// (every fork write-protects the region: an invalidation of every page, then COW breaks on the NIC's
/// write faults). Every DMA translation is compared with the CPU page table (the model); every byte
/// read back is compared with what was written.
/// </summary>
public sealed class OdpRaceTests
{
    [Test]
    public void ConcurrentInvalidationsAndFaults_NeverUseAStaleTranslation_AndLoseNoData()
    {
        Mlx5WorkloadResult? r = null;
        long retries = 0;
        // Collisions are likely but timing-dependent on a loaded host: up to three runs to see one.
        for (int attempt = 0; attempt < 3 && retries == 0; attempt++)
        {
            r = OdpWorkloads.RaceStress(pages: 64, seed: 31 + attempt, rounds: 24);
            Assert.That(r.DataVerified, Is.True, "every byte read back matched");
            Assert.That(r.Counters["stale_translations"], Is.Zero, "no DMA used a translation the CPU page table no longer had");
            Assert.That(r.Counters["requester_stale_translations"], Is.Zero);
            Assert.That(r.Counters["failed_operations"], Is.Zero);
            Assert.That(r.Counters["read_back_mismatches"], Is.Zero);
            retries = r.Counters["seq_retries"] + r.Counters["fault_retries"];
        }
        Assert.That(r!.Counters["forks"], Is.GreaterThan(0));
        Assert.That(r.Counters["page_invalidations_handled"], Is.GreaterThan(0), "the forks invalidated mapped pages");
        Assert.That(r.Counters["page_faults_handled"], Is.GreaterThan(2), "the NIC re-faulted after invalidations");
        Assert.That(retries, Is.GreaterThan(0), "faults collided with invalidations and were retried (read_retry / -EBUSY)");
    }
}
