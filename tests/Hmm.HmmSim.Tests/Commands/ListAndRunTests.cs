using System.Text.Json;
using Hmm.Samples.HmmSim.Demos;
using NUnit.Framework;

namespace Hmm.HmmSim.Tests.Commands;

/// <summary><c>hmmsim list</c> and the shape of <c>hmmsim run NAME --json</c>.</summary>
public sealed class ListAndRunTests
{
    [Test]
    public void List_prints_each_demo_as_its_name_a_space_and_its_description()
    {
        var o = HmmSimProcess.Invoke("list");
        Assert.That(o.ExitCode, Is.Zero);
        Assert.That(o.Stderr, Is.Empty);
        string[] lines = o.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();
        Assert.That(lines, Has.Length.EqualTo(DemoCatalog.All.Count));
        for (int i = 0; i < lines.Length; i++)
        {
            var demo = DemoCatalog.All[i];
            Assert.That(lines[i], Is.EqualTo(demo.Name + " " + demo.Description));
            Assert.That(demo.Name, Does.Match("^[a-z0-9]+(-[a-z0-9]+)*$"), "a name is one word: the first space ends it");
            Assert.That(demo.Description, Does.Not.Contain("\n"));
        }
        Assert.That(lines.Select(l => l.Split(' ')[0]), Is.Unique);
    }

    [Test]
    public void Json_is_one_object_with_the_documented_members()
    {
        var r = HmmSimProcess.RunJson("fault-storm", "--pages", "8", "--seed", "3");
        Assert.Multiple(() =>
        {
            Assert.That(r.EnumerateObject().Select(p => p.Name),
                Is.EqualTo(new[] { "demo", "parameters", "counters", "simulatedTimeNs", "wallTimeMs", "dataVerified" }));
            Assert.That(r.GetProperty("demo").GetString(), Is.EqualTo("fault-storm"));
            Assert.That(r.GetProperty("parameters").GetProperty("pages").GetInt32(), Is.EqualTo(8));
            Assert.That(r.GetProperty("parameters").GetProperty("seed").GetUInt64(), Is.EqualTo(3UL));
            Assert.That(r.GetProperty("parameters").GetProperty("policy").GetString(), Is.EqualTo("nouveau"));
            Assert.That(r.GetProperty("counters").EnumerateObject().All(c => c.Value.ValueKind == JsonValueKind.Number), Is.True);
            Assert.That(r.GetProperty("counters").EnumerateObject().Count(), Is.GreaterThan(10));
            Assert.That(r.SimulatedNs(), Is.GreaterThan(0));
            Assert.That(r.GetProperty("wallTimeMs").GetDouble(), Is.GreaterThan(0));
            Assert.That(r.GetProperty("dataVerified").ValueKind, Is.EqualTo(JsonValueKind.True));
            Assert.That(r.Counter("serviced"), Is.EqualTo(8));
        });
    }

    [Test]
    public void Run_without_json_prints_for_people_and_exits_zero()
    {
        var o = HmmSimProcess.Invoke("run", "atomics");
        Assert.That(o.ExitCode, Is.Zero, o.Stderr);
        Assert.That(o.Stdout, Does.Contain("atomics").And.Contain("simulated").And.Contain("data verified"));
        Assert.That(o.Stdout, Does.Not.Contain("\u001b["), "no ANSI escapes when the output is not a terminal");
    }

    [Test]
    public void Help_lists_the_verbs()
    {
        var o = HmmSimProcess.Invoke("--help");
        Assert.That(o.ExitCode, Is.Zero);
        foreach (string verb in new[] { "tour", "list", "run", "report", "dmirror", "explore" }) Assert.That(o.Stdout, Does.Contain(verb));
    }

    [Test]
    public void Tour_runs_every_demo_and_exits_zero()
    {
        var o = HmmSimProcess.Invoke();
        Assert.That(o.ExitCode, Is.Zero, o.Stderr);
        foreach (var d in DemoCatalog.All) Assert.That(o.Stdout, Does.Contain(d.Name + " (" + d.Section + ")"));
        Assert.That(o.Stdout, Does.Contain("every byte verified"));
    }
}
