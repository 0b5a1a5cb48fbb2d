using BenchmarkDotNet.Attributes;
using Hmm.Runtime;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;

namespace Hmm.Benchmarks;

/// <summary>
/// Target 4 (device-memory issue): migrating 64 MiB of anonymous memory system → device-private
/// → system, 4 KiB pages at ≥ 0.5× and 2 MiB THP units at ≥ 0.7× the throughput of a raw memcpy
/// of the same 128 MiB measured in the same run, and 0 bytes allocated per page after warm-up.
/// </summary>
/// <remarks>
/// <para>One invocation is one round trip of the whole 64 MiB region: <see cref="BenchDriver"/>
/// migrates it to device memory and back, 2 MiB (512 entries) per migrate_vma call, the way a
/// driver does (setup → allocate destinations with <see cref="DevPagemap.InitPage"/> or
/// <see cref="SystemPages.TryAllocateLocked"/> → one batched <see cref="CopyEngine.Copy"/> →
/// pages → finalize). Every page's bytes cross twice, 128 MiB in all, which is what the baseline
/// copies. <c>OperationsPerInvoke = Pages</c>, so each reported op is one 4 KiB page's round trip
/// (8 KiB copied) and "Allocated" is bytes per page.</para>
/// <para>The region returns to system memory at the end of every invocation (new frames, same
/// data), so invocations are independent and can be repeated.</para>
/// </remarks>
[MemoryDiagnoser]
public class MigrationBenchmarks
{
    /// <summary>4 KiB pages in the migrated region (64 MiB).</summary>
    public const int Pages = 16384;

    private const ulong Length = (ulong)Pages * Page.Size;

    private Machine _machine = null!;
    private Process _process = null!;
    private BenchDriver _driver = null!;
    private ulong _base4K;
    private ulong _baseThp;
    private byte[] _a = null!;
    private byte[] _b = null!;

    /// <summary>
    /// Boots a machine (1 GiB RAM, lock validation off) with 192 MiB of device-private memory,
    /// maps and writes a 64 MiB region of 4 KiB pages (MADV_NOHUGEPAGE) and a 64 MiB region of
    /// THPs (MADV_HUGEPAGE), checks one round trip of each moves every page with its data, then
    /// warms the JIT.
    /// </summary>
    [GlobalSetup]
    public void GlobalSetup()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 1L << 30, LockValidation = false });
        _process = _machine.CreateProcess("bench");
        _driver = new BenchDriver(_machine, 192UL << 20);
        _base4K = MapRegion(Advice.NoHugePage);
        _baseThp = MapRegion(Advice.HugePage);
        _a = new byte[Length];
        _b = new byte[Length];
        new Random(1).NextBytes(_a);

        Verify(_base4K, thp: false);
        Verify(_baseThp, thp: true);
        WarmUpTieredJit();
    }

    private ulong MapRegion(Advice advice)
    {
        ulong map = _process.Mmap(Length + Page.PmdSize, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        ulong start = (map + Page.PmdSize - 1) & ~(Page.PmdSize - 1);
        _process.Madvise(start, Length, advice);
        for (ulong off = 0; off < Length; off += Page.Size) _process.Store(start + off, start + off);
        return start;
    }

    private void Verify(ulong start, bool thp)
    {
        var mm = _process.Mm;
        if (thp != mm.EntryAt(start).IsHuge) throw new InvalidOperationException($"region at 0x{start:x}: expected huge={thp}");
        long toDevice = _driver.ToDevice(_process, start, Pages, thp);
        if (toDevice != Pages) throw new InvalidOperationException($"moved {toDevice} of {Pages} pages to the device");
        for (ulong off = 0; off < Length; off += Page.Size)
            if (mm.EntryAt(start + off).Kind != PteKind.DevicePrivate) throw new InvalidOperationException($"0x{start + off:x} not device-private");
        long toSystem = _driver.ToSystem(_process, start, Pages, thp);
        if (toSystem != Pages) throw new InvalidOperationException($"moved {toSystem} of {Pages} pages back");
        for (ulong off = 0; off < Length; off += Page.Size)
        {
            var e = mm.EntryAt(start + off);
            if (e.Kind != PteKind.Present || e.IsHuge != thp || _process.Load<ulong>(start + off) != start + off)
                throw new InvalidOperationException($"0x{start + off:x} not back in system memory with its data");
        }
    }

    /// <summary>
    /// Short jobs warm up for far less than tiered compilation needs to install tier-1 code for
    /// the migrate path (see README): run every benchmark for at least 1 s first.
    /// </summary>
    private void WarmUpTieredJit()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int round = 0; round < 6 || clock.ElapsedMilliseconds < 1500; round++)
        {
            MemcpyBaseline();
            Migrate4K();
            MigrateThp();
        }
        Thread.Sleep(200);
    }

    /// <summary>Tears the machine down.</summary>
    [GlobalCleanup]
    public void GlobalCleanup()
    {
        _process.Exit();
        _machine.Dispose();
    }

    /// <summary>Baseline: Span.CopyTo of 64 MiB there and back (128 MiB copied).</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Pages)]
    public void MemcpyBaseline()
    {
        _a.AsSpan().CopyTo(_b);
        _b.AsSpan().CopyTo(_a);
    }

    /// <summary>64 MiB of 4 KiB anonymous pages to device-private memory and back.</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    public long Migrate4K()
        => _driver.ToDevice(_process, _base4K, Pages, thp: false) + _driver.ToSystem(_process, _base4K, Pages, thp: false);

    /// <summary>64 MiB of THPs (32 × 2 MiB) to 2 MiB device-private folios and back.</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    public long MigrateThp()
        => _driver.ToDevice(_process, _baseThp, Pages, thp: true) + _driver.ToSystem(_process, _baseThp, Pages, thp: true);
}

/// <summary>
/// A minimal device-private driver (written against the public driver API only): free lists of
/// 4 KiB pages and 2 MiB folios in plain arrays, one reusable <see cref="MigrateVma"/>, src/dst
/// arrays and copy batch, so the driver side allocates nothing per migration.
/// </summary>
internal sealed class BenchDriver : IDevPagemapOps
{
    private readonly Machine _machine;
    private readonly DevPagemap _pgmap;
    private readonly CopyEngine _copy;
    private readonly ulong[] _free;
    private int _freeCount;
    private readonly ulong[] _freeLarge;
    private int _freeLargeCount;
    private readonly ulong[] _src = new ulong[Page.PmdPages];
    private readonly ulong[] _dst = new ulong[Page.PmdPages];
    private readonly PageCopy[] _copies = new PageCopy[Page.PmdPages];
    private readonly MigrateVma _migrate = new();

    public BenchDriver(Machine machine, ulong bytes)
    {
        _machine = machine;
        _copy = new CopyEngine(machine);
        var e = DevPagemap.Create(machine, DevicePageKind.Private, bytes, this, this, out var pgmap);
        if (e != Errno.Ok) throw new InvalidOperationException($"DevPagemap.Create: {e}");
        _pgmap = pgmap!;
        _free = new ulong[_pgmap.PageCount];
        _freeLarge = new ulong[_pgmap.PageCount / Page.PmdPages];
        for (ulong pfn = _pgmap.FirstPfn + _pgmap.PageCount; pfn > _pgmap.FirstPfn;)
        {
            pfn -= Page.PmdPages;
            _freeLarge[_freeLargeCount++] = pfn;
        }
    }

    private bool TryAllocate(int order, out ulong pfn)
    {
        pfn = 0;
        if (order == Page.PmdOrder)
        {
            if (_freeLargeCount == 0) return false;
            pfn = _freeLarge[--_freeLargeCount];
        }
        else if (_freeCount > 0) pfn = _free[--_freeCount];
        else
        {
            if (_freeLargeCount == 0) return false;
            ulong block = _freeLarge[--_freeLargeCount];
            for (ulong i = Page.PmdPages - 1; i > 0; i--) _free[_freeCount++] = block + i;
            pfn = block;
        }
        _pgmap.InitPage(pfn, order);
        return true;
    }

    /// <summary>page_free: the page comes back to the driver's free list.</summary>
    public void PageFree(DevPagemap pgmap, ulong pfn)
    {
        if (pgmap.FolioOrder(pfn) == Page.PmdOrder) _freeLarge[_freeLargeCount++] = pfn;
        else _free[_freeCount++] = pfn;
    }

    /// <summary>Not exercised: the benchmark never touches device pages from the CPU.</summary>
    public VmFaultResult MigrateToRam(in VmFault vmf) => VmFaultResult.SigBus;

    /// <summary>Migrates [addr, +npages) to device memory in 2 MiB chunks; returns pages moved.</summary>
    public long ToDevice(Process p, ulong addr, int npages, bool thp)
    {
        var select = MigrateSelect.System | (thp ? MigrateSelect.Compound : 0);
        long moved = 0;
        p.Mm.MmapLock.ReadLock();
        try
        {
            var vma = p.Mm.FindVma(addr)!;
            for (int done = 0; done < npages; done += Page.PmdPages)
            {
                var args = Prepare(vma, addr + ((ulong)done << Page.Shift), Math.Min(Page.PmdPages, npages - done), select);
                if (MigrateVma.Setup(args) != Errno.Ok) throw new InvalidOperationException("migrate_vma_setup");
                int n = args.EntryCount, copies = 0;
                for (int i = 0; i < n; i++)
                {
                    ulong s = _src[i];
                    if ((s & MigratePfn.Migrate) == 0) continue;
                    bool large = (s & MigratePfn.Compound) != 0;
                    if (large && TryAllocate(Page.PmdOrder, out ulong big))
                    {
                        if (MigratePfn.IsValid(s)) _copies[copies++] = new PageCopy(s >> MigratePfn.Shift, big, Page.PmdOrder);
                        else _copy.Clear([big], Page.PmdOrder);
                        _dst[i] = MigratePfn.FromPfn(big) | MigratePfn.Compound;
                        i += Page.PmdPages - 1;
                        continue;
                    }
                    if (large || !MigratePfn.IsValid(s)) throw new InvalidOperationException("unexpected source entry");
                    if (!TryAllocate(0, out ulong page)) continue;
                    _copies[copies++] = new PageCopy(s >> MigratePfn.Shift, page);
                    _dst[i] = MigratePfn.FromPfn(page);
                }
                _copy.Copy(_copies.AsSpan(0, copies));
                MigrateVma.Pages(args);
                moved += Moved(n);
                MigrateVma.Finalize(args);
            }
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        return moved;
    }

    /// <summary>Migrates this device's pages in [addr, +npages) back to system memory; returns pages moved.</summary>
    public long ToSystem(Process p, ulong addr, int npages, bool thp)
    {
        var select = MigrateSelect.DevicePrivate | (thp ? MigrateSelect.Compound : 0);
        long moved = 0;
        p.Mm.MmapLock.ReadLock();
        try
        {
            var vma = p.Mm.FindVma(addr)!;
            for (int done = 0; done < npages; done += Page.PmdPages)
            {
                var args = Prepare(vma, addr + ((ulong)done << Page.Shift), Math.Min(Page.PmdPages, npages - done), select);
                if (MigrateVma.Setup(args) != Errno.Ok) throw new InvalidOperationException("migrate_vma_setup");
                int n = args.EntryCount, copies = 0;
                for (int i = 0; i < n; i++)
                {
                    ulong s = _src[i];
                    if ((s & MigratePfn.Migrate) == 0 || !MigratePfn.IsValid(s)) continue;
                    bool large = (s & MigratePfn.Compound) != 0;
                    int order = large ? Page.PmdOrder : 0;
                    if (!SystemPages.TryAllocateLocked(_machine, order, out ulong page)) continue;
                    _copies[copies++] = new PageCopy(s >> MigratePfn.Shift, page, order);
                    _dst[i] = MigratePfn.FromPfn(page) | (large ? MigratePfn.Compound : 0);
                    if (large) i += Page.PmdPages - 1;
                }
                _copy.Copy(_copies.AsSpan(0, copies));
                MigrateVma.Pages(args);
                moved += Moved(n);
                MigrateVma.Finalize(args);
            }
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        return moved;
    }

    private long Moved(int n)
    {
        long moved = 0;
        for (int i = 0; i < n; i++)
            if ((_src[i] & (MigratePfn.Migrate | MigratePfn.Valid)) == (MigratePfn.Migrate | MigratePfn.Valid))
                moved += (_src[i] & MigratePfn.Compound) != 0 ? Page.PmdPages : 1;
        return moved;
    }

    private MigrateVma Prepare(Vma vma, ulong start, int n, MigrateSelect select)
    {
        Array.Clear(_dst);
        _migrate.Vma = vma;
        _migrate.Start = start;
        _migrate.End = start + ((ulong)n << Page.Shift);
        _migrate.Src = _src;
        _migrate.Dst = _dst;
        _migrate.PgmapOwner = this;
        _migrate.Flags = select;
        _migrate.FaultPage = null;
        return _migrate;
    }
}
