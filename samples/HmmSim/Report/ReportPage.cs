using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Hmm.Samples.HmmSim.Demos;
using Hmm.Samples.HmmSim.Rendering;

namespace Hmm.Samples.HmmSim.Report;

/// <summary>
/// The report: one self-contained HTML page (inline CSS, inline script drawing SVG, the runs'
/// data inline as JSON; nothing fetched from a network). Per demo: its explanation, faults and
/// migrations over simulated time, residency (CPU / VRAM / remote) of each 2 MiB block over time,
/// thrashing events over time and the counter table; across demos: p2p vs fallback bytes.
/// Every chart is a <c>figure[data-chart]</c> whose SVG the script fills and marks with
/// <c>data-drawn</c> = the number of shapes drawn, which the browser test checks.
/// </summary>
public static class ReportPage
{
    /// <summary>The page for <paramref name="runs"/>.</summary>
    public static string Render(IReadOnlyList<DemoRun> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        var html = new StringBuilder(64 * 1024);
        html.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n")
            .Append("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">\n")
            .Append("<title>hmmsim report</title>\n<style>").Append(Css).Append("</style></head><body>\n")
            .Append("<h1>hmmsim report</h1>\n<p class=\"lead\">")
            .Append(runs.Count.ToString(CultureInfo.InvariantCulture))
            .Append(" demos of Linux HMM drivers on a simulated machine. Times on the charts are simulated (the device clock); ")
            .Append("wall time is what the simulator took. Residency: <span class=\"sw cpu\"></span> CPU only, ")
            .Append("<span class=\"sw vram\"></span> VRAM, <span class=\"sw remote\"></span> system memory a device maps remotely.</p>\n");

        html.Append("<nav><ul>");
        foreach (var run in runs)
            html.Append("<li><a href=\"#").Append(Id(run)).Append("\">").Append(E(run.Demo.Name)).Append("</a></li>");
        html.Append("</ul></nav>\n");

        html.Append("<section id=\"all\"><h2>Peer-to-peer vs fallback bytes</h2>")
            .Append("<p>Bytes a NIC moved straight into GPU memory (p2p) or through system memory after a migration (fallback), per demo.</p>")
            .Append("<figure class=\"chart\" data-chart=\"p2p\"><svg viewBox=\"0 0 900 260\" role=\"img\" aria-label=\"p2p vs fallback bytes\"></svg></figure></section>\n");

        foreach (var run in runs) Section(html, run);

        html.Append("<script type=\"application/json\" id=\"hmmsim-data\">").Append(Data(runs)).Append("</script>\n")
            .Append("<script>").Append(Script).Append("</script>\n</body></html>\n");
        return html.ToString();
    }

    private static string Id(DemoRun run) => "demo-" + run.Demo.Name;

    private static string E(string text) => WebUtility.HtmlEncode(text);

    private static void Section(StringBuilder html, DemoRun run)
    {
        var p = run.Parameters;
        html.Append("<section class=\"demo\" id=\"").Append(Id(run)).Append("\">")
            .Append("<h2>").Append(E(run.Demo.Name)).Append(" <small>").Append(E(run.Demo.Section)).Append("</small></h2>")
            .Append("<p>").Append(E(run.Demo.Explanation)).Append("</p>")
            .Append("<p class=\"meta\">").Append(p.Pages.ToString(CultureInfo.InvariantCulture)).Append(" pages")
            .Append(p.Policy is { } pol ? ", policy " + RunJson.PolicyName(pol) : "")
            .Append(", seed ").Append(p.Seed.ToString(CultureInfo.InvariantCulture))
            .Append(" · simulated <b>").Append(E(DemoView.FormatNs(run.Result.SimulatedTimeNs))).Append("</b>")
            .Append(" · wall ").Append(run.WallTimeMs.ToString("F0", CultureInfo.InvariantCulture)).Append(" ms · ")
            .Append(run.Result.DataVerified ? "<span class=\"ok\">data verified</span>" : "<span class=\"bad\">DATA MISMATCH</span>")
            .Append("</p>\n<div class=\"charts\">");
        Figure(html, run, "timeline", "Faults and migrations over simulated time");
        if (run.Timeline.Frames.Count > 0)
        {
            Figure(html, run, "residency", "Residency per 2 MiB block over simulated time");
            Figure(html, run, "thrashing", "Thrashing events over simulated time");
        }
        else
        {
            // The NIC workloads run as one step of the mlx5 sample: only their start and end are known.
            html.Append("<p class=\"note\">This workload runs as one step of the mlx5 sample: the timeline shows its start and end; ")
                .Append("residency and thrashing are not sampled (no GPU residency policy is involved).</p>");
        }
        html.Append("</div>\n<table class=\"counters\"><thead><tr><th>counter</th><th>value</th></tr></thead><tbody>");
        var zeros = new List<string>();
        foreach (var (name, value) in run.Result.Counters)
        {
            if (value == 0) { zeros.Add(name); continue; }
            html.Append("<tr><td>").Append(E(name)).Append("</td><td>").Append(value.ToString("N0", CultureInfo.InvariantCulture)).Append("</td></tr>");
        }
        html.Append("</tbody></table>");
        if (zeros.Count > 0) html.Append("<p class=\"zero\">Zero: ").Append(E(string.Join(", ", zeros))).Append(".</p>");
        html.Append("</section>\n");
    }

    private static void Figure(StringBuilder html, DemoRun run, string kind, string caption)
        => html.Append("<figure class=\"chart\" data-chart=\"").Append(kind).Append("\" data-demo=\"").Append(E(run.Demo.Name)).Append("\">")
               .Append("<figcaption>").Append(E(caption)).Append("</figcaption>")
               .Append("<svg viewBox=\"0 0 440 240\" role=\"img\" aria-label=\"").Append(E(caption)).Append("\"></svg></figure>");

    /// <summary>The runs as the script reads them (Utf8JsonWriter escapes &lt; and &gt;, so the JSON cannot close its script element).</summary>
    private static string Data(IReadOnlyList<DemoRun> runs)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartArray();
            foreach (var run in runs)
            {
                w.WriteStartObject();
                w.WritePropertyName("run");
                RunJson.Write(w, run);
                w.WriteStartArray("points");
                foreach (var t in run.Timeline.Points)
                {
                    w.WriteStartArray();
                    w.WriteNumberValue(t.TimeNs);
                    w.WriteNumberValue(t.Faults);
                    w.WriteNumberValue(t.MigratedToDevice);
                    w.WriteNumberValue(t.MigratedToSystem);
                    w.WriteNumberValue(t.ThrashingEvents);
                    w.WriteNumberValue(t.P2pBytes);
                    w.WriteNumberValue(t.FallbackBytes);
                    w.WriteEndArray();
                }
                w.WriteEndArray();
                w.WriteStartArray("frames");
                foreach (var f in run.Timeline.Frames)
                {
                    w.WriteStartObject();
                    w.WriteNumber("t", f.TimeNs);
                    w.WriteStartArray("blocks");
                    foreach (var b in f.Blocks)
                    {
                        w.WriteStartArray();
                        w.WriteNumberValue(b.Cpu);
                        w.WriteNumberValue(b.Vram);
                        w.WriteNumberValue(b.Remote);
                        w.WriteEndArray();
                    }
                    w.WriteEndArray();
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private const string Css = """
        body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1400px;color:#222;padding:0 1em}
        h1{margin-bottom:.2em} h2 small{color:#888;font-weight:normal;font-size:.7em}
        nav ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.4em 1em}
        section{border-top:1px solid #ddd;padding-top:.6em;margin-top:1.2em}
        .charts{display:flex;flex-wrap:wrap;gap:1em} figure.chart{margin:0;flex:1 1 420px;max-width:460px}
        figure.chart svg{width:100%;height:auto;background:#fcfcfc;border:1px solid #eee}
        #all figure.chart{max-width:920px} figcaption{font-size:.85em;color:#555}
        table.counters{border-collapse:collapse;margin-top:.8em;font-variant-numeric:tabular-nums}
        table.counters td,table.counters th{border:1px solid #e3e3e3;padding:.15em .6em;text-align:left}
        table.counters td:last-child{text-align:right} p.zero{color:#999;font-size:.85em}
        p.note{color:#666;font-style:italic;max-width:420px} .ok{color:#1a7f37;font-weight:bold} .bad{color:#c00;font-weight:bold} .meta{color:#444}
        .sw{display:inline-block;width:.9em;height:.9em;vertical-align:middle;border:1px solid #999}
        .sw.cpu{background:#4e79a7}.sw.vram{background:#59a14f}.sw.remote{background:#f28e2b}
        svg text{font:11px system-ui,sans-serif;fill:#333}
        """;

    private const string Script = """
        "use strict";
        (function () {
          const NS = "http://www.w3.org/2000/svg";
          const runs = JSON.parse(document.getElementById("hmmsim-data").textContent);
          const byName = new Map(runs.map(r => [r.run.demo, r]));
          function el(parent, name, attrs, text) {
            const e = document.createElementNS(NS, name);
            for (const k in attrs) e.setAttribute(k, attrs[k]);
            if (text !== undefined) e.textContent = text;
            parent.appendChild(e);
            return e;
          }
          function fmtTime(ns) {
            if (ns >= 1e9) return (ns / 1e9).toFixed(2) + " s";
            if (ns >= 1e6) return (ns / 1e6).toFixed(2) + " ms";
            if (ns >= 1e3) return (ns / 1e3).toFixed(0) + " µs";
            return ns + " ns";
          }
          function fmtNum(v) {
            if (v >= 1e9) return (v / 1e9).toFixed(1) + "G";
            if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
            if (v >= 1e4) return (v / 1e3).toFixed(0) + "k";
            return String(Math.round(v));
          }
          function frame(svg, w, h, xMax, yMax, xFmt) {
            const m = { l: 48, r: 10, t: 24, b: 28 };
            const pw = w - m.l - m.r, ph = h - m.t - m.b;
            el(svg, "line", { x1: m.l, y1: m.t + ph, x2: m.l + pw, y2: m.t + ph, stroke: "#999" });
            el(svg, "line", { x1: m.l, y1: m.t, x2: m.l, y2: m.t + ph, stroke: "#999" });
            for (let i = 0; i <= 4; i++) {
              const y = m.t + ph - ph * i / 4;
              el(svg, "text", { x: m.l - 4, y: y + 4, "text-anchor": "end" }, fmtNum(yMax * i / 4));
              const x = m.l + pw * i / 4;
              el(svg, "text", { x: x, y: m.t + ph + 16, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }, xFmt(xMax * i / 4));
            }
            return { x: v => m.l + (xMax > 0 ? pw * v / xMax : 0), y: v => m.t + ph - (yMax > 0 ? ph * v / yMax : 0), m: m, pw: pw, ph: ph };
          }
          function legend(svg, items) {
            let x = 52;
            for (const it of items) {
              el(svg, "rect", { x: x, y: 6, width: 10, height: 10, fill: it.color });
              el(svg, "text", { x: x + 14, y: 15 }, it.name);
              x += 22 + it.name.length * 6.8;
            }
          }
          // Lines of cumulative counters over simulated time; returns the number of path points drawn.
          function lines(svg, points, series) {
            const w = 440, h = 240;
            const tMax = points.length ? points[points.length - 1][0] : 0;
            let yMax = 4;
            for (const p of points) for (const s of series) yMax = Math.max(yMax, p[s.index]);
            yMax = Math.ceil(yMax / 4) * 4;
            const f = frame(svg, w, h, Math.max(tMax, 1), yMax, fmtTime);
            let drawn = 0;
            for (const s of series) {
              let d = "";
              points.forEach((p, i) => { d += (i ? "L" : "M") + f.x(p[0]).toFixed(1) + "," + f.y(p[s.index]).toFixed(1); drawn++; });
              if (d) el(svg, "path", { d: d, fill: "none", stroke: s.color, "stroke-width": 2, class: "series" });
            }
            legend(svg, series);
            return drawn;
          }
          function timeline(svg, r) {
            return lines(svg, r.points, [
              { name: "faults", index: 1, color: "#e15759" },
              { name: "to VRAM", index: 2, color: "#59a14f" },
              { name: "to system", index: 3, color: "#4e79a7" }]);
          }
          function thrashing(svg, r) {
            return lines(svg, r.points, [{ name: "thrashing events", index: 4, color: "#b07aa1" }]);
          }
          // One column per frame, one row per 2 MiB block, stacked CPU / VRAM / remote shares.
          function residency(svg, r) {
            const frames = r.frames.filter(f => f.blocks.length > 0), w = 440, h = 240;
            const blocks = frames.reduce((n, f) => Math.max(n, f.blocks.length), 0);
            const m = { l: 48, r: 10, t: 24, b: 28 };
            const pw = w - m.l - m.r, ph = h - m.t - m.b;
            let drawn = 0;
            if (frames.length && blocks) {
              const cw = pw / frames.length, rh = ph / blocks;
              frames.forEach((f, i) => {
                f.blocks.forEach((b, j) => {
                  const total = b[0] + b[1] + b[2];
                  const x = m.l + i * cw, y0 = m.t + j * rh;
                  if (!total) { el(svg, "rect", { x: x, y: y0, width: cw + 0.3, height: rh, fill: "#eee" }); drawn++; return; }
                  let y = y0;
                  [["#4e79a7", b[0]], ["#59a14f", b[1]], ["#f28e2b", b[2]]].forEach(([c, n]) => {
                    if (!n) return;
                    const hh = rh * n / total;
                    el(svg, "rect", { x: x, y: y, width: cw + 0.3, height: hh, fill: c, class: "cell" });
                    y += hh; drawn++;
                  });
                });
              });
              el(svg, "text", { x: m.l - 4, y: m.t + 10, "text-anchor": "end" }, "blk 0");
              el(svg, "text", { x: m.l - 4, y: m.t + ph, "text-anchor": "end" }, "blk " + (blocks - 1));
              el(svg, "text", { x: m.l, y: m.t + ph + 16 }, fmtTime(frames[0].t));
              el(svg, "text", { x: m.l + pw, y: m.t + ph + 16, "text-anchor": "end" }, fmtTime(frames[frames.length - 1].t));
            }
            legend(svg, [{ name: "CPU", color: "#4e79a7" }, { name: "VRAM", color: "#59a14f" }, { name: "remote", color: "#f28e2b" }]);
            return drawn;
          }
          // Grouped bars per demo: p2p bytes and fallback bytes (from the counters).
          function p2p(svg) {
            const w = 900, h = 260;
            const rows = runs.map(r => ({ name: r.run.demo, p2p: r.run.counters.p2pBytes || 0, fb: r.run.counters.fallbackBytes || 0 }));
            const yMax = Math.ceil(Math.max(4, ...rows.map(r => Math.max(r.p2p, r.fb))) / 4) * 4;
            const f = frame(svg, w, h, rows.length, yMax, v => "");
            const bw = f.pw / Math.max(rows.length, 1);
            let drawn = 0;
            rows.forEach((r, i) => {
              const x = f.m.l + i * bw;
              [[r.p2p, "#59a14f", 0], [r.fb, "#e15759", 1]].forEach(([v, c, k]) => {
                const y = f.y(v);
                el(svg, "rect", { x: x + bw * (0.1 + 0.4 * k), y: y, width: bw * 0.38, height: Math.max(1, f.m.t + f.ph - y), fill: c, class: "bar" });
                drawn++;
              });
              el(svg, "text", { x: x + bw / 2, y: h - 10, "text-anchor": "middle" }, r.name.length > 14 ? r.name.slice(0, 13) + "…" : r.name);
            });
            legend(svg, [{ name: "p2p bytes", color: "#59a14f" }, { name: "fallback bytes", color: "#e15759" }]);
            if (rows.every(r => !r.p2p && !r.fb))
              el(svg, "text", { x: w / 2, y: h / 2, "text-anchor": "middle" }, "no NIC traffic in these demos");
            return drawn;
          }
          const draw = { timeline: timeline, residency: residency, thrashing: thrashing };
          for (const fig of document.querySelectorAll("figure[data-chart]")) {
            const svg = fig.querySelector("svg");
            const kind = fig.dataset.chart;
            const n = kind === "p2p" ? p2p(svg) : draw[kind](svg, byName.get(fig.dataset.demo));
            svg.setAttribute("data-drawn", String(n));
          }
          document.body.setAttribute("data-rendered", "true");
        })();
        """;
}
