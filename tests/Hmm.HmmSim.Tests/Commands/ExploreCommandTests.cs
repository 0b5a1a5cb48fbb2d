using Hmm.Samples.TestHmm.Exploration;
using NUnit.Framework;

namespace Hmm.HmmSim.Tests.Commands;

/// <summary><c>hmmsim explore</c>: the list and the one-line summary (bad arguments: <see cref="BadArgumentTests"/>).</summary>
[NonParallelizable]
public sealed class ExploreCommandTests
{
    [Test]
    public void List_prints_one_scenario_name_per_line()
    {
        var o = HmmSimProcess.Invoke("explore", "--list");
        Assert.That(o.ExitCode, Is.Zero);
        Assert.That(o.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            Is.EqualTo(DmirrorRaces.All.Select(s => s.Name)));
    }

    [Test]
    public void Explore_ends_with_the_schedule_and_failure_counts()
    {
        var o = HmmSimProcess.Invoke("explore", "invalidate-fault-service", "--schedules", "25", "--seed", "3", "--strategy", "pct", "--inject", "SeqBusy,CopyError");
        Assert.That(o.ExitCode, Is.Zero, o.Stdout + o.Stderr);
        Assert.That(o.Stdout.TrimEnd().Split('\n')[^1], Is.EqualTo("25 schedules, 0 failures"));
    }
}
