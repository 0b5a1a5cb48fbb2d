using Hmm.Runtime.Mm;
using Hmm.Runtime.Scheduling;
using Hmm.Samples.TestHmm.Exploration;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Exploration;

/// <summary>
/// fork and mremap racing a device-memory eviction (issue 8: the windows the rmap rework opened
/// — the eviction's walks no longer take any mmap lock — explored rather than forced one at a
/// time). Both scenarios run in the catalogue sweep of <see cref="RaceScenarioTests"/> (random
/// with every fault injected, and PCT); here each is explored again under both strategies
/// without injection, and the schedules are classified by what fork or mremap found, so the
/// test fails if the exploration stops reaching the window it exists for (fork copying, or
/// mremap moving, an entry the eviction had turned into a migration entry). fork-eviction
/// found the rmap walks' probe-everything-first bug (random seed 30100; regression tests in
/// RaceRegressionTests.ForkEviction.cs).
/// </summary>
[NonParallelizable]
public sealed class EvictionRaceTests
{
    private const int Schedules = 400;

    [Test]
    public void ForkRacingAnEviction_ReachesEveryWindow_AndFindsNothing([Values(0, 2)] int minor)
        => ExploreBoth($"fork-eviction minor {minor}", "the child's entry after fork", minor,
            (ctx, observe) => EvictionRaces.ForkVsEviction(ctx, minor, observe), "fork copy");

    [Test]
    public void MremapRacingAnEviction_ReachesEveryWindow_AndFindsNothing([Values(0, 2)] int minor)
        => ExploreBoth($"mremap-eviction minor {minor}", "the entry at the new address", minor,
            (ctx, observe) => EvictionRaces.MremapVsEviction(ctx, minor, observe), "mremap move");

    /// <summary>
    /// Explores <paramref name="scenario"/> under random and PCT schedules; no schedule may fail,
    /// and together they must have reached each window: the entry found (by fork's copy or
    /// mremap's move) before the eviction (a device-private entry; for coherent memory that is
    /// a present entry like the restored one), in the middle of it (a migration entry) and after it.
    /// </summary>
    private static void ExploreBoth(string name, string what, int minor, Action<ExploreContext, Action<PteKind>> scenario, string verb)
    {
        var seen = new Dictionary<PteKind, int>();
        foreach (var strategy in new[] { ExploreStrategy.Random, ExploreStrategy.Pct })
        {
            var mine = new Dictionary<PteKind, int>();
            ExploreReport report = Explore(strategy, ctx => scenario(ctx, k => Count(mine, k)));
            TestContext.Out.WriteLine($"{name} ({strategy}): {report.Summary}, {report.SchedulesPerSecond:F0} schedules/s; {what}: {Describe(mine)}");
            Assert.That(report.Failures, Is.Zero, report.ToString());
            Assert.That(report.Schedules, Is.EqualTo(Schedules));
            foreach (var (k, n) in mine) seen[k] = seen.GetValueOrDefault(k) + n;
        }

        Assert.That(seen.GetValueOrDefault(PteKind.Migration), Is.GreaterThan(0), $"no schedule had the {verb} find a migration entry of the eviction");
        Assert.That(seen.GetValueOrDefault(PteKind.Present), Is.GreaterThan(0), $"no schedule had the {verb} find a page the eviction had restored");
        if (minor == 0)
        {
            Assert.That(seen.GetValueOrDefault(PteKind.DevicePrivate), Is.GreaterThan(0), $"no schedule had the {verb} find the device-private entry before the eviction");
        }
    }

    /// <summary>Negative case: the oracle catches a wrong outcome (a check that cannot hold fails the exploration with its message).</summary>
    [Test]
    public void AScenarioWhoseOracleCannotHold_IsReported()
    {
        ExploreReport report = Explorer.Run(new ExploreOptions { Schedules = 5, Seed = 1 },
            ctx => EvictionRaces.ForkVsEviction(ctx, 0, k => ExploreContext.Check(false, $"planted: fork left a {k} entry")));

        Assert.That(report.Failures, Is.GreaterThan(0));
        Assert.That(report.FirstFailure!.Message, Does.Contain("planted: fork left a"));
    }

    private static ExploreReport Explore(ExploreStrategy strategy, Action<ExploreContext> body)
        => Explorer.Run(new ExploreOptions
        {
            Schedules = Schedules,
            Seed = strategy == ExploreStrategy.Pct ? 31_000UL : 30_000UL,
            Strategy = strategy,
            TraceDirectory = Path.Combine(TestContext.CurrentContext.WorkDirectory, "explore-traces"),
        }, body);

    private static void Count(Dictionary<PteKind, int> seen, PteKind kind) => seen[kind] = seen.GetValueOrDefault(kind) + 1;

    private static string Describe(Dictionary<PteKind, int> seen)
        => string.Join(", ", seen.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value}"));
}
