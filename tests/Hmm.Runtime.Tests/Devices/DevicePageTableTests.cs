using Hmm.Runtime.Tests.Support;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mirror;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Devices;

/// <summary>
/// The device MMU's mirror page table (drivers.md A.3 steps 8–9, A.4, B.6; issue 4 acceptance:
/// pruning back to baseline, memory per GiB mirrored).
/// </summary>
public class DevicePageTableTests
{
    private const ulong P = Page.Size;
    private const ulong Mib2 = Page.PmdSize;
    private const ulong Gib = 1UL << 30;
    private const ulong Base = 0x7f00_0000_0000; // 1 GiB aligned

    private static ulong[] Words(int n, ulong firstPfn, bool write = true, int order = 0)
    {
        var w = new ulong[n];
        for (int i = 0; i < n; i++) w[i] = HmmPfn.Make(firstPfn + (ulong)i, write, order);
        return w;
    }

    /// <summary>A.3 step 8: VALID → PTE at the pfn, WRITE → write bit; non-VALID → no PTE; the MMU reports hit/miss/permission.</summary>
    [Test]
    public void Install_FourKiBWords_TranslateHitMissAndPermission()
    {
        var pt = new DevicePageTable();
        ulong[] w = [HmmPfn.Make(0x100, write: true), HmmPfn.Make(0x200, write: false), 0, HmmPfn.Error];
        Assert.That(pt.Install(Base, w), Is.EqualTo(Errno.Ok));

        Assert.That(pt.ValidEntries, Is.EqualTo(2));
        Assert.That(pt.Translate(Base + 0x18, write: true, out var t), Is.EqualTo(DeviceMmuResult.Hit));
        Assert.That(t, Is.EqualTo(new DeviceTranslation(DeviceAperture.System, 0x100, true, false, 12)));
        Assert.That(t.AddressOf(Base + 0x18), Is.EqualTo((0x100UL << 12) | 0x18));
        Assert.That(pt.Translate(Base + P, write: false, out t), Is.EqualTo(DeviceMmuResult.Hit));
        Assert.That(t.Frame, Is.EqualTo(0x200UL));
        Assert.That(pt.Translate(Base + P, write: true, out _), Is.EqualTo(DeviceMmuResult.PermissionFault));
        Assert.That(pt.Translate(Base + P, write: false, atomic: true, out _), Is.EqualTo(DeviceMmuResult.PermissionFault));
        Assert.That(pt.Translate(Base + 2 * P, write: false, out _), Is.EqualTo(DeviceMmuResult.Miss));
        Assert.That(pt.Translate(Base + 3 * P, write: false, out _), Is.EqualTo(DeviceMmuResult.Miss), "ERROR words never map");
        Assert.That(pt.Translate(Base - P, write: false, out _), Is.EqualTo(DeviceMmuResult.Miss));
        Assert.That(pt.Translate(DevicePageTable.VaLimit, write: false, out _), Is.EqualTo(DeviceMmuResult.Miss));
    }

    /// <summary>A.3 step 8: a non-VALID word clears an existing entry (install is a full overwrite of the span).</summary>
    [Test]
    public void Install_NonValidWord_ClearsEntry()
    {
        var pt = new DevicePageTable();
        pt.Install(Base, Words(4, 0x100));
        pt.Install(Base + P, [0, HmmPfn.Make(0x999, false)]);
        Assert.That(pt.Lookup(Base + P, out _), Is.False);
        Assert.That(pt.Lookup(Base + 2 * P, out var t) && t.Frame == 0x999 && !t.Writable, Is.True);
        Assert.That(pt.ValidEntries, Is.EqualTo(3));
    }

    /// <summary>A.3 step 8: a THP-backed span (order-9 words) becomes ONE 2 MiB leaf; 4 KiB frames inside it are head + index.</summary>
    [Test]
    public void Install_Order9Words_OneTwoMiBLeaf()
    {
        var pt = new DevicePageTable();
        Assert.That(pt.Install(Base, Words(512, 0x4000, order: 9)), Is.EqualTo(Errno.Ok));
        Assert.That(pt.ValidEntries, Is.EqualTo(1));
        Assert.That(pt.MappedPages, Is.EqualTo(512));
        Assert.That(pt.TablesAtLevel(3), Is.Zero, "no 4 KiB leaf table for a 2 MiB leaf");
        Assert.That(pt.Translate(Base + 37 * P + 5, write: true, out var t), Is.EqualTo(DeviceMmuResult.Hit));
        Assert.That(t, Is.EqualTo(new DeviceTranslation(DeviceAperture.System, 0x4000 + 37, true, false, 21)));
    }

    /// <summary>A.3 steps 3 and 8: a one-page fault window on a THP maps the whole aligned 2 MiB block (address aligned down).</summary>
    [Test]
    public void Install_OnePageWindowOnThp_MapsWholeBlock()
    {
        var pt = new DevicePageTable();
        pt.Install(Base + 100 * P, [HmmPfn.Make(0x4000 + 100, write: false, order: 9)]);
        Assert.That(pt.Lookup(Base, out var first) && first.Frame == 0x4000 && first.Shift == 21 && !first.Writable, Is.True);
        Assert.That(pt.Lookup(Base + Mib2 - 1, out var last) && last.Frame == 0x4000 + 511, Is.True);
        Assert.That(pt.Lookup(Base + Mib2, out _), Is.False);
    }

    /// <summary>A.3 step 8 precondition: an order-9 word whose pfn is not at the address's offset in the block cannot be a 2 MiB leaf → 4 KiB leaves.</summary>
    [Test]
    public void Install_Order9MisalignedPfn_FallsBackToFourKiB()
    {
        var pt = new DevicePageTable();
        pt.Install(Base, Words(512, 0x4001, order: 9));
        Assert.That(pt.ValidEntries, Is.EqualTo(512));
        Assert.That(pt.Lookup(Base + P, out var t) && t.Shift == 12 && t.Frame == 0x4002, Is.True);
    }

    /// <summary>CPU-side PMD split mirrored: a 4 KiB install inside a 2 MiB leaf splits it, keeping the other 511 pages.</summary>
    [Test]
    public void Install_FourKiBInsideTwoMiBLeaf_Splits()
    {
        var pt = new DevicePageTable();
        pt.Install(Base, Words(512, 0x4000, order: 9));
        pt.Install(Base + 3 * P, [HmmPfn.Make(0x777, write: false)]);
        Assert.That(pt.ValidEntries, Is.EqualTo(512));
        Assert.That(pt.Lookup(Base + 3 * P, out var t) && t.Frame == 0x777 && t.Shift == 12, Is.True);
        Assert.That(pt.Lookup(Base + 4 * P, out t) && t.Frame == 0x4004 && t.Writable, Is.True);
        // and back: an order-9 install replaces the table by one leaf and retires the table
        pt.Install(Base, Words(512, 0x4000, order: 9));
        Assert.That(pt.ValidEntries, Is.EqualTo(1));
        Assert.That(pt.TablesAtLevel(3), Is.Zero);
    }

    /// <summary>A.3 step 8: device-private pages → VRAM aperture + VRAM offset, others → host aperture.</summary>
    [Test]
    public void Install_DevicePrivateTargets_VramAperture()
    {
        var pt = new DevicePageTable();
        pt.Install(Base, [HmmPfn.Make(0x10_0005, true), HmmPfn.Make(0x42, true)], new DevicePrivateTargets(0x10_0000, 0x1000));
        Assert.That(pt.Lookup(Base, out var t) && t.Aperture == DeviceAperture.Vram && t.Frame == 5, Is.True);
        Assert.That(pt.Lookup(Base + P, out t) && t.Aperture == DeviceAperture.System && t.Frame == 0x42, Is.True);
    }

    /// <summary>Bad spans: unaligned or beyond the 48-bit VA → EINVAL; frames beyond the 27-bit PTE → exception.</summary>
    [Test]
    public void Install_BadSpan_Einval()
    {
        var pt = new DevicePageTable();
        Assert.That(pt.Install(Base + 1, Words(1, 1)), Is.EqualTo(Errno.EINVAL));
        Assert.That(pt.Install(DevicePageTable.VaLimit - P, Words(2, 1)), Is.EqualTo(Errno.EINVAL));
        Assert.That(pt.Install(DevicePageTable.VaLimit - P, Words(1, 1)), Is.EqualTo(Errno.Ok));
        Assert.Throws<ArgumentOutOfRangeException>(() => pt.Install(Base, Words(1, DevicePte.MaxFrame + 1)));
    }

    /// <summary>B.6 / A.5: invalidation clears entries and returns the count (the TLB-invalidation cost); a partly covered 2 MiB leaf goes whole.</summary>
    [Test]
    public void Clear_ReturnsEntriesCleared_PartialHugeGoesWhole()
    {
        var pt = new DevicePageTable();
        pt.Install(Base, Words(16, 0x100));
        pt.Install(Base + Mib2, Words(512, 0x4000, order: 9));
        Assert.That(pt.Clear(Base + 4 * P + 1, Base + 8 * P), Is.EqualTo(4), "start rounds down, end is exclusive");
        Assert.That(pt.Lookup(Base + 3 * P, out _) && !pt.Lookup(Base + 4 * P, out _) && pt.Lookup(Base + 8 * P, out _), Is.True);
        Assert.That(pt.Clear(Base + Mib2 + 10 * P, Base + Mib2 + 11 * P), Is.EqualTo(1));
        Assert.That(pt.Lookup(Base + Mib2, out _), Is.False, "the whole 2 MiB leaf was invalidated");
        Assert.That(pt.Clear(Base + Mib2, Base + 2 * Mib2), Is.Zero, "nothing left to invalidate");
        Assert.That(pt.ValidEntries, Is.EqualTo(12));
        Assert.That(pt.MappedPages, Is.EqualTo(12));
    }

    /// <summary>B.6 protection events: write dropped (atomic with it); Protect(write: true) drops only atomic (A.6 revocation).</summary>
    [Test]
    public void Protect_DropsWriteAndAtomic()
    {
        var pt = new DevicePageTable();
        pt.Install(Base, Words(4, 0x100), atomic: true);
        pt.Install(Base + Mib2, Words(512, 0x4000, order: 9));
        Assert.That(pt.Translate(Base, write: true, atomic: true, out _), Is.EqualTo(DeviceMmuResult.Hit));
        Assert.That(pt.Protect(Base, Base + 2 * P, write: true), Is.EqualTo(2));
        Assert.That(pt.Translate(Base, write: true, atomic: true, out _), Is.EqualTo(DeviceMmuResult.PermissionFault));
        Assert.That(pt.Translate(Base, write: true, out _), Is.EqualTo(DeviceMmuResult.Hit));
        Assert.That(pt.Protect(Base, Base + 3 * Mib2, write: false), Is.EqualTo(5), "4 small + 1 huge lose write");
        Assert.That(pt.Protect(Base, Base + 3 * Mib2, write: false), Is.Zero);
        Assert.That(pt.Translate(Base + Mib2 + P, write: true, out _), Is.EqualTo(DeviceMmuResult.PermissionFault));
        Assert.That(pt.Translate(Base + Mib2 + P, write: false, out _), Is.EqualTo(DeviceMmuResult.Hit));
        Assert.That(pt.ValidEntries, Is.EqualTo(5));
    }

    /// <summary>Issue 4 + seed design point: tables left empty are pruned at once; after a full clear the table is back to its baseline (root only).</summary>
    [Test]
    public void Clear_Everything_MemoryReturnsToBaseline()
    {
        var pt = new DevicePageTable(poolLimit: 4);
        long baseline = pt.MemoryBytes;
        Assert.That(baseline, Is.EqualTo(DevicePageTable.BaselineBytes));
        ulong[] spots = [Mib2, Base, Base + Gib, Base + 600 * Gib, DevicePageTable.VaLimit - 2 * Mib2];
        foreach (ulong va in spots)
        {
            pt.Install(va, Words(512, 0x4000, order: 9));
            pt.Install(va + Mib2, Words(300, 0x8000));
        }
        Assert.That(pt.MemoryBytes, Is.GreaterThan(baseline));
        Assert.That(pt.Clear(0, DevicePageTable.VaLimit), Is.EqualTo(5 * 301));
        Assert.That(pt.MemoryBytes, Is.EqualTo(baseline));
        Assert.That(pt.LiveTables, Is.EqualTo(1));
        for (int l = 1; l < DevicePageTable.Levels; l++) Assert.That(pt.TablesAtLevel(l), Is.Zero, $"level {l}");
        Assert.That(pt.ValidEntries, Is.Zero);
        Assert.That(pt.PooledBytes, Is.EqualTo(4 * DevicePageTable.BytesPerTable), "pool capped");
        pt.TrimPool();
        Assert.That(pt.PooledBytes, Is.Zero);
    }

    /// <summary>Pruning is per range: clearing one mirrored range frees its tables but not a neighbour's; a span of non-VALID words prunes too.</summary>
    [Test]
    public void Clear_PartialRange_PrunesOnlyEmptiedTables()
    {
        var pt = new DevicePageTable();
        pt.Install(Base, Words(8, 0x100));
        int afterFirst = pt.LiveTables;
        pt.Install(Base + Gib, Words(8, 0x200));
        Assert.That(pt.LiveTables, Is.EqualTo(afterFirst + 2), "new PMD + leaf table under the shared level-1 table");
        pt.Clear(Base + Gib, Base + Gib + 8 * P);
        Assert.That(pt.LiveTables, Is.EqualTo(afterFirst));
        pt.Install(Base, new ulong[8]); // all non-VALID: clears and prunes
        Assert.That(pt.LiveTables, Is.EqualTo(1));
    }

    /// <summary>The MemoryBytes accounting is exact: one table is one uint[513] as CoreCLR allocates it, plus its registry slot.</summary>
    [Test]
    public void BytesPerTable_MatchesRuntimeAllocation()
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var table = new uint[DevicePageTable.EntriesPerTable + 1];
        long size = GC.GetAllocatedBytesForCurrentThread() - before;
        GC.KeepAlive(table);
        Assert.That(size + 8, Is.EqualTo(DevicePageTable.BytesPerTable));
    }

    /// <summary>Issue 4: memory per GiB mirrored ≤ 2 MiB with 4 KiB leaves and ≤ 16 KiB with 2 MiB leaves (root included).</summary>
    [Test]
    public void MemoryPerGib_WithinTargets()
    {
        var small = new DevicePageTable();
        small.Install(Base, Words(1 << 18, 0x10_0000));
        var huge = new DevicePageTable();
        huge.Install(Base, Words(1 << 18, 0x10_0000, order: 9));
        TestContext.Out.WriteLine($"4 KiB leaves: {small.MemoryBytes} B/GiB ({small.LiveTables} tables); 2 MiB leaves: {huge.MemoryBytes} B/GiB ({huge.LiveTables} tables)");
        Assert.That(small.ValidEntries, Is.EqualTo(1 << 18));
        Assert.That(huge.ValidEntries, Is.EqualTo(512));
        Assert.That(small.MemoryBytes, Is.EqualTo(515 * DevicePageTable.BytesPerTable)); // root + L1 + PMD + 512 leaf tables = 1,075,320 B
        Assert.That(small.MemoryBytes, Is.LessThanOrEqualTo(2L << 20));
        Assert.That(huge.MemoryBytes, Is.EqualTo(3 * DevicePageTable.BytesPerTable)); // root + L1 + PMD = 6,264 B
        Assert.That(huge.MemoryBytes, Is.LessThanOrEqualTo(16L << 10));
    }

    /// <summary>ARCHITECTURE §8: install/clear/translate allocate nothing after warm-up (pruned tables come back from the pool).</summary>
    [Test]
    public void HotPaths_AllocateNothingAfterWarmUp()
    {
        var pt = new DevicePageTable();
        var w = Words(512, 0x100);
        var thp = Words(512, 0x4000, order: 9);
        void Cycle()
        {
            pt.Install(Base, w);
            pt.Install(Base + Mib2, thp);
            pt.Install(Base + Mib2 + P, w.AsSpan(0, 1)); // split
            pt.Translate(Base + 5 * P, write: true, out _);
            pt.Protect(Base, Base + 2 * Mib2, write: false);
            pt.Clear(Base, Base + 2 * Mib2);
        }
        Assert.That(Allocations.Measure(Cycle, iterations: 100), Is.Zero);
    }

    /// <summary>
    /// Concurrency rule: Translate on device threads while the driver installs, clears and
    /// recycles tables between two ranges. A hit for range A must carry A's frame and write bit —
    /// never B's entries read through a recycled table, never a torn entry.
    /// </summary>
    [Test]
    public void Translate_ConcurrentWithClearAndTableReuse_NoTornReads()
    {
        var pt = new DevicePageTable(poolLimit: 8);
        const int Pages = 2048; // 4 leaf tables
        ulong a = Base, b = Base + 3 * Gib;
        var wa = Words(Pages, 0x10_0000, write: true);
        var wb = Words(Pages, 0x50_0000, write: false);
        var thpA = Words(Pages, 0x10_0000, write: true, order: 9);
        int stop = 0;
        long hits = 0, misses = 0;
        string? failure = null;
        var readers = new Thread[2];
        for (int r = 0; r < readers.Length; r++)
        {
            int seed = r;
            readers[r] = new Thread(() =>
            {
                var rng = new Random(seed);
                while (Volatile.Read(ref stop) == 0)
                {
                    ulong page = (ulong)rng.Next(Pages);
                    var res = pt.Translate(a + page * P, write: false, out var t);
                    if (res == DeviceMmuResult.Hit)
                    {
                        hits++;
                        if (t.Frame != 0x10_0000 + page || !t.Writable || t.Aperture != DeviceAperture.System)
                            failure ??= $"va page {page}: {t}";
                    }
                    else if (res == DeviceMmuResult.Miss) misses++;
                    else failure ??= $"unexpected {res}";
                }
            }) { IsBackground = true };
            readers[r].Start();
        }
        for (int i = 0; i < 3000 && failure is null; i++)
        {
            pt.Install(a, (i & 1) == 0 ? wa : thpA);
            pt.Clear(a, a + Pages * P);
            pt.Install(b, wb);
            pt.Clear(b, b + Pages * P);
        }
        Volatile.Write(ref stop, 1);
        foreach (var t in readers) t.Join();
        TestContext.Out.WriteLine($"hits {hits}, misses {misses}");
        Assert.That(failure, Is.Null);
        Assert.That(pt.MemoryBytes, Is.EqualTo(DevicePageTable.BaselineBytes));
    }
}
