using System.Globalization;
using Hmm.Runtime.Mm;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Stress;

/// <summary>
/// The concurrency stress suite of issue 8: CPU threads, fork, mprotect/madvise churn and device
/// migrations on one address space at once, for dmirror minor 0 (device-private memory) and
/// minor 2 (device-coherent memory), lock validator on. In CI each case runs
/// <see cref="DefaultSeconds"/> seconds (20 cases, about 40 s in all); <c>HMM_STRESS_SECONDS</c>
/// sets the seconds per case for a local run of minutes. The soak of one device kind, ten
/// minutes: <c>HMM_STRESS_SECONDS=600 dotnet test tests/Hmm.Samples.Tests -c Release -- 'NUnit.Where=name == "Workload(0,1)"'</c>
/// (<c>Workload(2,1)</c> for coherent memory); the whole suite: <c>--filter TestCategory=Stress</c>.
/// Every case prints its operations per thread.
/// </summary>
[Category("Stress")]
[NonParallelizable]
public class ConcurrencyStressTests
{
    /// <summary>Seconds per case in CI.</summary>
    public const double DefaultSeconds = 1.5;

    private static TimeSpan Duration
    {
        get
        {
            var s = Environment.GetEnvironmentVariable("HMM_STRESS_SECONDS");
            return TimeSpan.FromSeconds(s is { Length: > 0 } && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : DefaultSeconds);
        }
    }

    /// <summary>The workload exactly as issue 8 writes it, three seeds per device kind.</summary>
    [Test]
    public void Workload([Values(0, 2)] int minor, [Values(1, 2, 3)] int seed) => Run(minor, seed, StressVariant.None);

    /// <summary>Two CPU threads and two device threads.</summary>
    [Test]
    public void MoreThreads([Values(0, 2)] int minor) => Run(minor, 11, StressVariant.MoreThreads);

    /// <summary>Device-exclusive access on top of the migrations.</summary>
    [Test]
    public void ExclusiveAccess([Values(0, 2)] int minor) => Run(minor, 12, StressVariant.Exclusive);

    /// <summary>THP splits and collapses of the CPU half under migration.</summary>
    [Test]
    public void ThpSplits([Values(0, 2)] int minor) => Run(minor, 13, StressVariant.ThpSplit);

    /// <summary>munmap/mmap and mremap of the range being migrated.</summary>
    [Test]
    public void MunmapMremapOfMigratingRange([Values(0, 2)] int minor) => Run(minor, 14, StressVariant.MunmapMremap);

    /// <summary>The device's memory evicted and unplugged under the migrations.</summary>
    /// <remarks>
    /// Found the struct-page lookup of a migration entry read without the PTL (PAGE-R02 once the
    /// eviction had unplugged the memory); regression test
    /// <see cref="RaceRegressionTests.CpuFaultOnAMigrationEntryWhoseDeviceMemoryIsUnpluggedMeanwhile_Retries"/>.
    /// </remarks>
    [Test]
    public void DeviceMemoryRemoval([Values(0, 2)] int minor) => Run(minor, 15, StressVariant.DeviceRemoval);

    /// <summary>Forked children torn down by the OOM reaper.</summary>
    [Test]
    public void OomReaperTeardown([Values(0, 2)] int minor) => Run(minor, 16, StressVariant.OomReap);

    /// <summary>Everything at once.</summary>
    /// <remarks>
    /// Found, besides the unplug race above, a THP split that rewrote the subpage refcounts in
    /// place and lost a reference taken concurrently (PAGE-R01); regression test
    /// <see cref="RaceRegressionTests.PinOfASubpageWhileItsThpIsSplit_LandsOnTheSubpageNotLost"/>.
    /// </remarks>
    [Test]
    public void Everything([Values(0, 2)] int minor)
        => Run(minor, 17, StressVariant.MoreThreads | StressVariant.Exclusive | StressVariant.ThpSplit | StressVariant.MunmapMremap | StressVariant.DeviceRemoval | StressVariant.OomReap);

    private static void Run(int minor, int seed, StressVariant variant)
    {
        using var machine = new Machine(new MachineOptions { SystemMemory = 256L << 20, LockValidation = true });
        var process = machine.CreateProcess("stress");
        var workload = new HmmStressWorkload(machine, process, minor, seed, variant, Duration);
        try { workload.Run(); }
        finally
        {
            TestContext.Out.WriteLine($"minor {minor} seed {seed} {variant} {workload.Duration.TotalSeconds:0.#} s: "
                + string.Join(", ", workload.Threads.Select(t => $"{t.Name} {t.Operations} ops")));
        }
        foreach (var t in workload.Threads) Assert.That(t.Operations, Is.GreaterThan(0), $"thread {t.Name} completed no operation");
        machine.CheckInvariants();
    }
}
