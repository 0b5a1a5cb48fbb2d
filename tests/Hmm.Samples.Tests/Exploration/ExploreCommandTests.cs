using Hmm.Samples.HmmSim;
using Hmm.Samples.TestHmm.Exploration;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Exploration;

/// <summary><c>hmmsim explore</c>: the list, the one-line summary, the exit codes.</summary>
[NonParallelizable]
public sealed class ExploreCommandTests
{
    [Test]
    public void List_prints_one_scenario_name_per_line()
    {
        var output = new StringWriter();

        int code = Cli.Run(["explore", "--list"], output);

        Assert.That(code, Is.Zero);
        Assert.That(output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            Is.EqualTo(DmirrorRaces.All.Select(s => s.Name)));
    }

    [Test]
    public void Explore_ends_with_the_schedule_and_failure_counts()
    {
        var output = new StringWriter();

        int code = Cli.Run(["explore", "invalidate-fault-service", "--schedules", "25", "--seed", "3", "--strategy", "pct", "--inject", "SeqBusy,CopyError"], output);

        Assert.That(code, Is.Zero, output.ToString());
        Assert.That(output.ToString().TrimEnd().Split('\n')[^1], Is.EqualTo("25 schedules, 0 failures"));
    }

    [TestCase("no-such-scenario")]
    [TestCase("dmirror-munmap-read", "--strategy", "sideways")]
    [TestCase("dmirror-munmap-read", "--inject", "Meteor")]
    [TestCase("dmirror-munmap-read", "--schedules", "0")]
    public void Bad_arguments_exit_with_2(params string[] args)
    {
        var output = new StringWriter();

        int code = Cli.Run(["explore", .. args], output);

        Assert.That(code, Is.EqualTo(2));
        Assert.That(output.ToString(), Does.StartWith("hmmsim explore:"));
    }
}
