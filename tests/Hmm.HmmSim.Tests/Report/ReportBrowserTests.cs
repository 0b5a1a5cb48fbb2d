using Microsoft.Playwright;
using NUnit.Framework;

namespace Hmm.HmmSim.Tests.Report;

/// <summary>
/// Acceptance 3 of issue 15: <c>hmmsim report</c>'s page, loaded from disk in a real headless
/// Chromium (Debian's package at <c>/usr/bin/chromium</c>, driven by Playwright through its
/// executable path: no browser download) with every network request blocked. Every chart must have
/// drawn shapes, no script or console error may occur, and a screenshot is attached to the result.
/// A missing browser is a failure, not a skip: <c>.ci/run</c> installs it.
/// </summary>
[NonParallelizable]
public sealed class ReportBrowserTests
{
    // What the charts of these demos must at least draw: a line chart's path points (one per
    // sample and series), a residency chart's cells, the p2p chart's bars (two per demo).
    private static readonly string[] GpuDemos = ["first-touch", "ping-pong-uvm", "thrashing", "oversubscription"];
    private static readonly string[] NicDemos = ["rdma-into-gpu-fallback", "rdma-into-gpu-p2p"];
    private static readonly string[] Demos = [.. GpuDemos, .. NicDemos];

    private static string ChromiumPath => Environment.GetEnvironmentVariable("HMMSIM_CHROMIUM") is { Length: > 0 } p ? p : "/usr/bin/chromium";

    private string _dir = null!;

    [SetUp]
    public void MakeDirectory() => _dir = Directory.CreateTempSubdirectory("hmmsim-report-").FullName;

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(_dir, recursive: true);

    [Test]
    public async Task Every_chart_renders_in_headless_chromium_without_errors_or_network()
    {
        Assert.That(File.Exists(ChromiumPath), Is.True,
            $"Chromium not found at {ChromiumPath}: install Debian's chromium package (.ci/run does) or set HMMSIM_CHROMIUM");
        string outDir = Path.Combine(_dir, "report");
        var outcome = HmmSimProcess.Invoke(["report", "--out", outDir, .. Demos]);
        Assert.That(outcome.ExitCode, Is.Zero, outcome.Stderr);
        string index = Path.Combine(outDir, "index.html");
        Assert.That(File.Exists(index), Is.True);

        using var playwright = await Playwright.CreateAsync();
        await using var context = await playwright.Chromium.LaunchPersistentContextAsync(Path.Combine(_dir, "profile"), new BrowserTypeLaunchPersistentContextOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync"],
            ViewportSize = new ViewportSize { Width = 1400, Height = 1000 },
        });
        var blocked = new List<string>();
        await context.RouteAsync("**/*", async route =>
        {
            if (route.Request.Url.StartsWith("file:", StringComparison.Ordinal)) await route.ContinueAsync();
            else
            {
                lock (blocked) blocked.Add(route.Request.Url);
                await route.AbortAsync();
            }
        });
        var page = context.Pages.Count > 0 ? context.Pages[0] : await context.NewPageAsync();
        var errors = new List<string>();
        page.Console += (_, msg) => { if (msg.Type == "error") lock (errors) errors.Add("console: " + msg.Text); };
        page.PageError += (_, error) => { lock (errors) errors.Add("page error: " + error); };

        await page.GotoAsync(new Uri(index).AbsoluteUri, new PageGotoOptions { WaitUntil = WaitUntilState.Load });
        await page.WaitForSelectorAsync("body[data-rendered=true]", new PageWaitForSelectorOptions { Timeout = 30_000 });

        var charts = await page.EvalOnSelectorAllAsync<ChartInfo[]>("figure[data-chart]", """
            figs => figs.map(f => {
              const svg = f.querySelector("svg");
              const d = Array.from(svg.querySelectorAll("path.series")).map(p => (p.getAttribute("d").match(/[ML]/g) || []).length);
              return { kind: f.dataset.chart, demo: f.dataset.demo || "", drawn: Number(svg.getAttribute("data-drawn") || "0"),
                       pathPoints: d.reduce((a, b) => a + b, 0), shapes: svg.querySelectorAll("rect.cell, rect.bar").length,
                       tallBars: Array.from(svg.querySelectorAll("rect.bar")).filter(b => Number(b.getAttribute("height")) > 2).length };
            })
            """);

        string shot = Path.Combine(TestContext.CurrentContext.WorkDirectory, "hmmsim-report.png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = shot, FullPage = true });
        TestContext.AddTestAttachment(shot, "hmmsim report rendered by headless Chromium");

        Assert.Multiple(() =>
        {
            Assert.That(errors, Is.Empty, "no script or console error");
            Assert.That(blocked, Is.Empty, "the page asked for nothing outside the file");
            Assert.That(charts.Count(c => c.Kind == "p2p"), Is.EqualTo(1));
            Assert.That(charts.Where(c => c.Kind == "timeline").Select(c => c.Demo), Is.EquivalentTo(Demos), "one timeline per demo");
            // The NIC workloads run as one step: no residency frames, so those two charts are GPU demos' only.
            foreach (string kind in new[] { "residency", "thrashing" })
                Assert.That(charts.Where(c => c.Kind == kind).Select(c => c.Demo), Is.EquivalentTo(GpuDemos), $"one {kind} chart per GPU demo");
            foreach (var c in charts)
            {
                string what = $"{c.Kind} chart of {(c.Demo.Length > 0 ? c.Demo : "all demos")}";
                switch (c.Kind)
                {
                    case "timeline":
                        Assert.That(c.PathPoints, Is.GreaterThanOrEqualTo(Array.IndexOf(GpuDemos, c.Demo) >= 0 ? 3 * 3 : 3 * 2),
                            what + ": three series, of at least three points for a GPU demo, start and end for a NIC one");
                        break;
                    case "thrashing":
                        Assert.That(c.PathPoints, Is.GreaterThanOrEqualTo(3), what);
                        break;
                    case "residency":
                        Assert.That(c.Shapes, Is.GreaterThanOrEqualTo(4), what + ": residency cells");
                        break;
                    case "p2p":
                        Assert.That(c.Shapes, Is.EqualTo(2 * Demos.Length), what + ": two bars per demo");
                        Assert.That(c.TallBars, Is.EqualTo(3), what + ": fallback bytes of both NIC demos and p2p bytes of the p2p one");
                        break;
                }
                Assert.That(c.Drawn, Is.GreaterThan(0), what + " reports what it drew");
            }
        });
        var size = new FileInfo(shot).Length;
        Assert.That(size, Is.GreaterThan(20_000), "a real screenshot, not a blank page");
    }

    /// <summary>What the page says about one chart.</summary>
    public sealed class ChartInfo
    {
        /// <summary>timeline, residency, thrashing or p2p.</summary>
        public string Kind { get; set; } = "";
        /// <summary>The demo (empty for the cross-demo chart).</summary>
        public string Demo { get; set; } = "";
        /// <summary>The script's own count of shapes drawn.</summary>
        public int Drawn { get; set; }
        /// <summary>Points of the series paths.</summary>
        public int PathPoints { get; set; }
        /// <summary>Residency cells and bars.</summary>
        public int Shapes { get; set; }
        /// <summary>Bars taller than the 1-pixel baseline a zero draws.</summary>
        public int TallBars { get; set; }
    }
}
