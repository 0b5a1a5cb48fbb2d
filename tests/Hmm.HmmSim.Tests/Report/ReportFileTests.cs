using NUnit.Framework;

namespace Hmm.HmmSim.Tests.Report;

/// <summary>Where <c>hmmsim report</c> writes: one self-contained index.html, atomically, replacing an older one.</summary>
public sealed class ReportFileTests
{
    [Test]
    public void Report_writes_one_self_contained_page_and_leaves_nothing_else()
    {
        string parent = Directory.CreateTempSubdirectory("hmmsim-rep-").FullName;
        try
        {
            string dir = Path.Combine(parent, "out");
            var o = HmmSimProcess.Invoke("report", "--out", dir, "fault-storm", "unload");
            Assert.That(o.ExitCode, Is.Zero, o.Stderr);
            Assert.That(Directory.GetFileSystemEntries(parent), Is.EqualTo(new[] { dir }), "no staging directory left");
            Assert.That(Directory.GetFileSystemEntries(dir), Is.EqualTo(new[] { Path.Combine(dir, "index.html") }));
            string html = File.ReadAllText(Path.Combine(dir, "index.html"));
            Assert.Multiple(() =>
            {
                Assert.That(html, Does.Not.Match("(src|href|action)=\"(https?:|//)").And.Not.Contain("<link").And.Not.Contain("fetch(").And.Not.Contain("<img"),
                    "nothing fetched: no external script, style, image or request");
                Assert.That(html, Does.Contain("id=\"demo-fault-storm\"").And.Contain("id=\"demo-unload\""));
                Assert.That(html, Does.Contain("data-chart=\"residency\"").And.Contain("data-chart=\"p2p\""));
            });

            File.WriteAllText(Path.Combine(dir, "index.html"), "old");
            File.WriteAllText(Path.Combine(dir, "notes.txt"), "mine");
            o = HmmSimProcess.Invoke("report", "--out", dir, "fault-storm");
            Assert.That(o.ExitCode, Is.Zero, o.Stderr);
            Assert.That(File.ReadAllText(Path.Combine(dir, "index.html")), Does.StartWith("<!DOCTYPE html>"), "replaced");
            Assert.That(File.ReadAllText(Path.Combine(dir, "notes.txt")), Is.EqualTo("mine"), "other files untouched");
            Assert.That(Directory.GetFileSystemEntries(parent), Has.Length.EqualTo(1));
        }
        finally { Directory.Delete(parent, recursive: true); }
    }
}
