using NUnit.Framework;

namespace Hmm.HmmSim.Tests.Commands;

/// <summary>Command-line mistakes: one line on stderr naming the problem, exit code 2, nothing run or written.</summary>
public sealed class BadArgumentTests
{
    [TestCase(new[] { "run", "no-such-demo" }, "no-such-demo")]
    [TestCase(new[] { "run", "bind", "--pages", "-5" }, "--pages")]
    [TestCase(new[] { "run", "bind", "--pages", "0" }, "--pages")]
    [TestCase(new[] { "run", "bind", "--pages", "99999999999" }, "--pages")]
    [TestCase(new[] { "run", "bind", "--pages", "100000000" }, "out of range")]
    [TestCase(new[] { "run", "bind", "--pages", "many" }, "--pages")]
    [TestCase(new[] { "run", "invalidation-race", "--pages", "100" }, "multiple of 16")]
    [TestCase(new[] { "run", "bind", "--policy", "amd" }, "unknown policy 'amd'")]
    [TestCase(new[] { "run", "bind", "--seed", "-1" }, "--seed")]
    [TestCase(new[] { "run" }, "run")]
    [TestCase(new[] { "frobnicate" }, "frobnicate")]
    [TestCase(new[] { "report" }, "--out")]
    [TestCase(new[] { "explore", "no-such-scenario" }, "no-such-scenario")]
    [TestCase(new[] { "explore", "dmirror-munmap-read", "--strategy", "sideways" }, "sideways")]
    [TestCase(new[] { "explore", "dmirror-munmap-read", "--inject", "Meteor" }, "Meteor")]
    [TestCase(new[] { "explore", "dmirror-munmap-read", "--schedules", "0" }, "--schedules")]
    [TestCase(new[] { "explore" }, "--list")]
    public void A_mistake_is_one_line_naming_it_and_exit_code_2(string[] args, string named)
    {
        var o = HmmSimProcess.Invoke(args);
        Assert.Multiple(() =>
        {
            Assert.That(o.ExitCode, Is.EqualTo(2));
            Assert.That(o.ErrorLines, Has.Length.EqualTo(1), o.Stderr);
            Assert.That(o.Stderr, Does.StartWith("hmmsim: ").And.Contain(named));
            Assert.That(o.Stdout, Is.Empty, "nothing ran");
        });
    }

    [Test]
    public void The_right_arguments_for_the_same_verbs_succeed()
    {
        Assert.That(HmmSimProcess.Invoke("run", "invalidation-race", "--pages", "96", "--json").ExitCode, Is.Zero);
        Assert.That(HmmSimProcess.Invoke("run", "bind", "--pages", "2", "--policy", "uvm", "--json").ExitCode, Is.Zero);
    }

    [Test]
    public void A_bad_demo_name_in_report_writes_nothing_to_out()
    {
        string parent = Directory.CreateTempSubdirectory("hmmsim-bad-").FullName;
        try
        {
            string dir = Path.Combine(parent, "out");
            var o = HmmSimProcess.Invoke("report", "--out", dir, "first-touch", "no-such-demo");
            Assert.That(o.ExitCode, Is.EqualTo(2));
            Assert.That(o.ErrorLines, Has.Length.EqualTo(1));
            Assert.That(o.Stderr, Does.Contain("no-such-demo"));
            Assert.That(Directory.Exists(dir), Is.False, "--out not created");
            Assert.That(Directory.GetFileSystemEntries(parent), Is.Empty, "no staging directory left behind");
        }
        finally { Directory.Delete(parent, recursive: true); }
    }

    [Test]
    public void Report_into_a_file_path_is_refused()
    {
        string file = Path.GetTempFileName();
        try
        {
            var o = HmmSimProcess.Invoke("report", "--out", file, "fault-storm");
            Assert.That(o.ExitCode, Is.EqualTo(2));
            Assert.That(o.ErrorLines, Has.Length.EqualTo(1));
            Assert.That(new FileInfo(file).Length, Is.Zero, "the file is untouched");
        }
        finally { File.Delete(file); }
    }
}
