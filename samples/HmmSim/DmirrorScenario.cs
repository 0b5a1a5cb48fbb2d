using Hmm.Runtime;
using Hmm.Runtime.Mm;
using Hmm.Samples.TestHmm;

namespace Hmm.Samples.HmmSim;

/// <summary>Drives the dmirror sample driver through its ioctls, as lib/test_hmm's self-tests do, printing what happens.</summary>
public static class DmirrorScenario
{
    private const int Pages = 16;

    /// <summary>Runs the scenario.</summary>
    public static void Run(TextWriter output)
    {
        using var machine = new Machine(new MachineOptions { SystemMemory = 512L << 20 });
        var device = DmirrorDevice.Create(machine, minor: 0);
        var process = machine.CreateProcess("hmm-tests");
        ulong buf = process.Mmap(Pages * 4096, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        for (int i = 0; i < Pages; i++) process.Store(buf + ((ulong)i * 4096), i + 1);
        output.WriteLine($"dmirror0 (device-private memory); {Pages} pages written at 0x{buf:x}");

        using var mirror = device.Open(process);
        var bytes = new byte[Pages * 4096];
        var prot = new byte[Pages];
        Report(output, "HMM_DMIRROR_READ", mirror.Read(buf, Pages, bytes, out var c), c);
        Report(output, "HMM_DMIRROR_SNAPSHOT", mirror.Snapshot(buf, Pages, prot, out c), c);
        output.WriteLine($"    prot bytes: {Hex(prot)}   (0x02 = system page, writable)");

        Report(output, "HMM_DMIRROR_MIGRATE_TO_DEV", mirror.MigrateToDevice(buf, Pages, bytes, out c), c);
        Report(output, "HMM_DMIRROR_SNAPSHOT", mirror.Snapshot(buf, Pages, prot, out c), c);
        output.WriteLine($"    prot bytes: {Hex(prot)}   (0x22 = this device's private page, writable)");
        output.WriteLine($"    CPU page-table entry of page 0: {process.Mm.EntryAt(buf)}");

        output.WriteLine($"CPU reads page 3: {process.Load<int>(buf + (3 * 4096))} (migrate_to_ram brought it back)");
        Report(output, "HMM_DMIRROR_SNAPSHOT", mirror.Snapshot(buf, Pages, prot, out c), c);
        output.WriteLine($"    prot bytes: {Hex(prot)}");

        Report(output, "HMM_DMIRROR_RELEASE", mirror.Release(), default);
        output.WriteLine($"    device memory evicted; CPU reads page 5: {process.Load<int>(buf + (5 * 4096))}, entry {process.Mm.EntryAt(buf + (5 * 4096))}");
        mirror.Close();
        process.Exit();
        machine.CheckInvariants();
        output.WriteLine($"done: {machine.UsedPages} system pages in use, invariants hold");
    }

    private static void Report(TextWriter output, string ioctl, Errno result, DmirrorCounters counters)
        => output.WriteLine($"{ioctl,-28} -> {(result == Errno.Ok ? "0" : "-" + result)}  cpages={counters.Cpages} faults={counters.Faults}");

    private static string Hex(byte[] prot) => string.Join(" ", prot.Select(b => b.ToString("x2")));
}
