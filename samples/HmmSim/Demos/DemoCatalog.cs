using Hmm.Samples.HmmSim.Demos.Gpu;
using Hmm.Samples.HmmSim.Demos.Rdma;
using Hmm.Samples.Nouveau;

namespace Hmm.Samples.HmmSim.Demos;

/// <summary>Every demo hmmsim knows, in tour order (drivers.md F.1, F.3, then the NIC demos of F.2 and F.4).</summary>
public static class DemoCatalog
{
    /// <summary>The demos, in the order the tour runs them.</summary>
    public static IReadOnlyList<Demo> All { get; } =
    [
        new FirstTouchDemo(),
        new BindDemo(),
        new CpuTouchDemo(),
        new PingPongDemo(GpuPolicyMode.Nouveau),
        new PingPongDemo(GpuPolicyMode.Uvm),
        new InvalidationRaceDemo(),
        new AtomicsDemo(),
        new FaultStormDemo(),
        new UnloadDemo(),
        new ThrashingDemo(),
        new PrefetchDensityDemo(),
        new OversubscriptionDemo(),
        .. RdmaDemo.All,
    ];

    /// <summary>The demo named <paramref name="name"/> (exact, case-sensitive), or null.</summary>
    public static Demo? Find(string name)
    {
        foreach (var d in All)
            if (d.Name == name) return d;
        return null;
    }
}
