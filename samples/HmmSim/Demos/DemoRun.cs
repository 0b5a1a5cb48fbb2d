using System.Diagnostics;

namespace Hmm.Samples.HmmSim.Demos;

/// <summary>One finished run: the demo, what it was asked, what it found, how long the simulator took, and its timeline.</summary>
/// <param name="Demo">The demo.</param>
/// <param name="Parameters">Its parameters.</param>
/// <param name="Result">Counters, simulated time, data check.</param>
/// <param name="WallTimeMs">Wall-clock milliseconds the run took (the simulator, not the simulated system).</param>
/// <param name="Timeline">The recorded timeline (<see cref="TimelineRecorder.Off"/> when not reporting).</param>
public sealed record DemoRun(Demo Demo, DemoParameters Parameters, DemoResult Result, double WallTimeMs, TimelineRecorder Timeline)
{
    /// <summary>Runs <paramref name="demo"/> with <paramref name="parameters"/>, timing it; records the timeline when <paramref name="record"/>.</summary>
    public static DemoRun Execute(Demo demo, DemoParameters parameters, bool record)
    {
        ArgumentNullException.ThrowIfNull(demo);
        var recorder = record ? new TimelineRecorder() : TimelineRecorder.Off;
        var watch = Stopwatch.StartNew();
        var result = demo.Run(parameters, recorder);
        return new DemoRun(demo, parameters, result, watch.Elapsed.TotalMilliseconds, recorder);
    }
}
