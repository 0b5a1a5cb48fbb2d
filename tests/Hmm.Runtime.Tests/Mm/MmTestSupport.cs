using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>Shared helpers of the mm operation tests: small machines, patterns, snapshots.</summary>
internal static class MmTest
{
    public const ulong P = 4096;
    public const ulong Huge = 2UL << 20;
    public const Prot RW = Prot.Read | Prot.Write;
    public const MapFlags PrivAnon = MapFlags.Private | MapFlags.Anonymous;
    public const MapFlags SharedAnon = MapFlags.Shared | MapFlags.Anonymous;

    public static Machine NewMachine(int hugeTlbPages = 0, long memory = 64L << 20)
        => new(new MachineOptions { SystemMemory = memory, HugeTlbPages = hugeTlbPages });

    /// <summary>Writes a distinct int at the start of each page of [addr, addr + pages*4096).</summary>
    public static void Fill(Process p, ulong addr, int pages, int seed = 1000)
    {
        for (int i = 0; i < pages; i++) p.Store(addr + (ulong)i * P, seed + i);
    }

    /// <summary>Asserts the values <see cref="Fill"/> wrote.</summary>
    public static void AssertFilled(Process p, ulong addr, int pages, int seed = 1000)
    {
        for (int i = 0; i < pages; i++)
            Assert.That(p.Load<int>(addr + (ulong)i * P), Is.EqualTo(seed + i), $"page {i} at 0x{addr + (ulong)i * P:x}");
    }

    public static void AssertZero(Process p, ulong addr, int pages)
    {
        for (int i = 0; i < pages; i++)
            Assert.That(p.Load<int>(addr + (ulong)i * P), Is.Zero, $"page {i} at 0x{addr + (ulong)i * P:x}");
    }

    /// <summary>(start, end, flags) of every VMA, for exact comparisons.</summary>
    public static (ulong Start, ulong End, VmFlags Flags)[] Layout(Process p)
        => p.Mm.Vmas.Select(v => (v.Start, v.End, v.Flags)).ToArray();

    public static RecordedEvent Ev(NotifyEvent e, ulong start, ulong end, bool blockable = true) => new(e, start, end, blockable, null);

    /// <summary>The byte at <paramref name="addr"/> read through the page table and physical memory, without the mmap lock (as a device would).</summary>
    public static unsafe byte PeekPhysical(Process p, ulong addr)
    {
        var e = p.Mm.EntryAt(addr);
        Assert.That(e.Kind, Is.EqualTo(PteKind.Present), $"entry at 0x{addr:x}");
        ulong offset = e.IsHuge ? addr & (Huge - 1) : addr & (P - 1);
        return p.Machine.PageAddress(e.Pfn)[offset];
    }

    /// <summary>Exit every process, dispose files, and check nothing leaked.</summary>
    /// <summary>
    /// The end of a device test: invariants hold, every process exits leaving no system page, and
    /// each device got exactly one PageFree per page it handed out.
    /// </summary>
    public static void ExitAllAndCheckDevices(Machine machine, params TestDevice[] devices)
    {
        machine.CheckInvariants();
        ExitAll(machine);
        foreach (var d in devices) Assert.That(d.PageFrees, Is.EqualTo(d.Allocations), $"{d.Name}: PageFree calls vs allocations");
    }

    public static void ExitAll(Machine machine, params SimFile[] files)
    {
        foreach (var p in machine.Processes) p.Exit();
        foreach (var f in files) f.Dispose();
        machine.CheckInvariants();
        Assert.That(machine.UsedPages, Is.Zero, "pages leaked after every process exited");
    }
}

/// <summary>A before/after snapshot for "nothing changed" assertions on a failed call.</summary>
internal sealed class MmSnapshot
{
    private readonly Process _p;
    private readonly (ulong, ulong, VmFlags)[] _vmas;
    private readonly long _used, _rssAnon, _rssFile;
    private readonly (ulong Addr, int Value)[] _bytes;
    private readonly Pte[] _ptes;

    public MmSnapshot(Process p, params ulong[] probes)
    {
        _p = p;
        _vmas = MmTest.Layout(p);
        _bytes = probes.Select(a => (a, p.Load<int>(a))).ToArray();
        _ptes = probes.Select(a => p.Mm.EntryAt(a)).ToArray();
        _used = p.Machine.UsedPages;
        _rssAnon = p.Mm.RssAnon;
        _rssFile = p.Mm.RssFile;
    }

    public void AssertUnchanged()
    {
        Assert.That(MmTest.Layout(_p), Is.EqualTo(_vmas), "VMAs changed");
        Assert.That(_p.Machine.UsedPages, Is.EqualTo(_used), "UsedPages changed");
        Assert.That(_p.Mm.RssAnon, Is.EqualTo(_rssAnon), "RssAnon changed");
        Assert.That(_p.Mm.RssFile, Is.EqualTo(_rssFile), "RssFile changed");
        for (int i = 0; i < _bytes.Length; i++)
            Assert.That(_p.Mm.EntryAt(_bytes[i].Addr), Is.EqualTo(_ptes[i]), $"PTE at 0x{_bytes[i].Addr:x} changed");
        foreach (var (addr, value) in _bytes)
            Assert.That(_p.Load<int>(addr), Is.EqualTo(value), $"data at 0x{addr:x} changed");
    }
}
