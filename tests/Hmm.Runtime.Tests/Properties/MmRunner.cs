using System.Buffers.Binary;
using Hmm.Runtime.Mm;

namespace Hmm.Runtime.Tests.Properties;

/// <summary>Raised when the simulator and the reference model disagree.</summary>
internal sealed class DivergenceException(string message) : Exception(message);

/// <summary>
/// Runs an <see cref="MmCase"/> against a fresh <see cref="Machine"/> and the plain reference model
/// side by side, comparing every syscall outcome (address or errno), every CPU access outcome
/// (bytes, SIGSEGV or SIGBUS) and, at the end, the VMA layout, the contents of every interesting
/// page, the machine invariants and that no frame stays allocated once every process exited.
/// </summary>
internal sealed partial class MmRunner : IDisposable
{
    private const ulong PageSize = ModelPage.Size;
    private const ulong PmdSize = 2UL << 20;
    private const ulong Arena = 0x4000_0000_0000;      // MAP_FIXED / probing addresses, far below mmap_base
    private const int MaxProcs = 3;
    private static readonly ulong[] FileSizes = { 16 * PageSize, 5 * PageSize + 1500, 300 * PageSize };

    private readonly Machine _machine;
    private readonly bool _thp;
    private readonly List<ModelProc> _procs = new();
    private readonly ModelObject[] _files;
    private int _opIndex;
    private Op _op;
    private int _shmemCount;

    public MmRunner(bool thp, bool devices = false)
    {
        _devices = devices;
        _thp = thp;
        _machine = new Machine(new MachineOptions { SystemMemory = 256L << 20, TransparentHugePages = thp, LockValidation = true });
        _files = new ModelObject[FileSizes.Length];
        for (int i = 0; i < FileSizes.Length; i++)
        {
            var f = _machine.CreateFile(FileSizes[i], $"f{i}");
            var m = new ModelObject($"f{i}", FileSizes[i], f);
            for (ulong b = 0; b < m.Size; b++) m.Data[b] = (byte)(b * 31 + (ulong)i * 7 + (b >> 12));
            f.Pwrite(0, m.Data.AsSpan(0, (int)m.Size));
            _files[i] = m;
        }
        _procs.Add(new ModelProc(_machine.CreateProcess("p")));
        if (devices) CreateDevices();
    }

    public static void Run(MmCase c)
    {
        using var r = new MmRunner(c.Thp, c.Devices);
        r.RunAll(c.Ops);
    }

    public void RunAll(IReadOnlyList<Op> ops)
    {
        for (_opIndex = 0; _opIndex < ops.Count; _opIndex++)
        {
            _op = ops[_opIndex];
            Step(_op);
            if (_devices) TickPins();
            if (_opIndex % 50 == 49)
            {
                CheckVmas();
                _machine.CheckInvariants();
            }
        }
        _opIndex = -1;
        CheckVmas();
        SweepContents();
        _machine.CheckInvariants();
        foreach (var mp in _procs) mp.P.Exit();
        _procs.Clear();
        foreach (var f in _files) f.File!.Dispose();
        if (_devices) ReleaseAllPins();
        _machine.CheckInvariants();
        if (_machine.UsedPages != 0) Fail($"{_machine.UsedPages} pages still allocated after every process exited and every file was unlinked");
        if (_devices) CheckDevicesDrained();
    }

    public void Dispose()
    {
        if (_devices) DisposeDevices();
        _machine.Dispose();
    }

    private void Fail(string message)
        => throw new DivergenceException($"[thp={_thp}] {(_opIndex >= 0 ? $"op #{_opIndex} {_op}" : "final check")}: {message}");

    // ---- dispatch ------------------------------------------------------------------------------

    /// <summary>Outcome counts over every run in this process (kind/outcome → count), to see what the generator reaches.</summary>
    public static readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> Stats = new();

    private static void Count(string key) => Stats.AddOrUpdate(key, 1, (_, n) => n + 1);

    private static readonly bool Trace = Environment.GetEnvironmentVariable("MM_TRACE") != null;

    private void Step(Op op)
    {
        if (Trace) Console.WriteLine($"#{_opIndex} {op} procs=[{string.Join(", ", _procs)}]");
        switch (op.Kind)
        {
            case OpKind.Mmap: DoMmap(op); break;
            case OpKind.Munmap: DoMunmap(op); break;
            case OpKind.Mprotect: DoMprotect(op); break;
            case OpKind.Mremap: DoMremap(op); break;
            case OpKind.Madvise: DoMadvise(op); break;
            case OpKind.Fork: DoFork(op); break;
            case OpKind.Exit: DoExit(op); break;
            case OpKind.Spawn:
                if (_procs.Count < MaxProcs) _procs.Add(new ModelProc(_machine.CreateProcess("s")));
                break;
            case OpKind.Load: DoLoad(op); break;
            case OpKind.Store: DoStore(op); break;
            case OpKind.Read: DoRead(op); break;
            case OpKind.Write: DoWrite(op); break;
            case OpKind.Reclaim: DoReclaim(); break;
            case OpKind.FileIo: DoFileIo(op); break;
            case OpKind.Migrate: DoMigrate(op); break;
            case OpKind.Exclusive: DoExclusive(op); break;
            case OpKind.DevRemove: DoDevRemove(op); break;
            case OpKind.Pin: DoPin(op); break;
        }
    }

    private ModelProc? Pick(int p) => _procs.Count == 0 ? null : _procs[p % _procs.Count];

    private static Exception? Try(Action a)
    {
        try { a(); return null; }
        catch (ErrnoException e) { return e; }
        catch (SegmentationFault e) { return e; }
        catch (BusError e) { return e; }
    }

    private static string Describe(Exception? e) => e switch
    {
        null => "success",
        ErrnoException ee => $"{ee.Errno} ({ee.Message})",
        SegmentationFault s => $"SIGSEGV at 0x{s.Address:x} ({s.Message})",
        BusError b => $"SIGBUS at 0x{b.Address:x} ({b.Message})",
        _ => e.ToString(),
    };

    private void ExpectErrno(string what, Errno? expected, Exception? actual)
    {
        if (Trace) Console.WriteLine($"   {what} -> {Describe(actual)}");
        Count($"{_op.Kind}: {(actual is ErrnoException ee0 ? ee0.Errno.ToString() : "ok")}");
        if (expected == null && actual == null) return;
        if (expected != null && actual is ErrnoException ee && ee.Errno == expected) return;
        Fail($"{what}: model expects {(expected == null ? "success" : expected.ToString())}, simulator gave {Describe(actual)}");
    }

    // ---- address and range selection -------------------------------------------------------------

    private static IReadOnlyList<Vma> Vmas(ModelProc mp) => mp.P.Mm.Vmas;

    private static ulong ArenaAddr(int x) => Arena + (ulong)(x % 8192) * PageSize * 3;

    /// <summary>A page-aligned address: mostly inside or at the edge of an existing VMA, sometimes anywhere.</summary>
    private static ulong PickPage(ModelProc mp, int a, int b)
    {
        var vmas = Vmas(mp);
        if (vmas.Count == 0 || a % 12 == 0) return ArenaAddr(b);
        var v = vmas[a % vmas.Count];
        long pages = (long)(v.Length / PageSize);
        long idx = (a / 12) % 8 == 0 ? (b % (pages + 2)) - 1 : b % pages;   // sometimes one page before or after
        return (ulong)((long)v.Start + idx * (long)PageSize);
    }

    /// <summary>(addr, len): a whole VMA, a piece of one, a range spanning past it, or a small range somewhere.</summary>
    private static (ulong Addr, ulong Len) PickRange(ModelProc mp, int a, int b, int c)
    {
        var vmas = Vmas(mp);
        if (vmas.Count == 0 || a % 10 == 0) return (ArenaAddr(b), (ulong)(1 + c % 16) * PageSize);
        var v = vmas[a % vmas.Count];
        ulong pages = v.Length / PageSize;
        ulong start = (ulong)b % pages;
        ulong rest = pages - start;
        ulong n = (c % 4) switch
        {
            0 => 0,
            1 => 1 + (ulong)(c / 4) % rest,
            2 => 1 + (ulong)(c / 4) % (rest + 16),
            _ => 1 + (ulong)(c / 4) % Math.Min(3, rest),
        };
        return n == 0 ? (v.Start, v.Length) : (v.Start + start * PageSize, n * PageSize);
    }

    private static Vma? FindVma(IReadOnlyList<Vma> vmas, ulong addr)
    {
        foreach (var v in vmas) if (v.Start <= addr && addr < v.End) return v;
        return null;
    }

    // ---- model helpers ----------------------------------------------------------------------------

    private static bool Covered(ModelProc mp, ulong addr, ulong len)
    {
        for (ulong va = addr; va < addr + len; va += PageSize)
            if (!mp.Pages.ContainsKey(va / PageSize)) return false;
        return true;
    }

    private static bool AnyMapped(ModelProc mp, ulong addr, ulong len)
    {
        for (ulong va = addr; va < addr + len; va += PageSize)
            if (mp.Pages.ContainsKey(va / PageSize)) return true;
        return false;
    }

    private static void DropPage(ModelEntry e)
    {
        e.Exclusive = false;
        if (e.Page == null) return;
        e.Page.MapCount--;
        e.Page = null;
    }

    private static void ModelUnmap(ModelProc mp, ulong addr, ulong len)
    {
        for (ulong va = addr; va < addr + len; va += PageSize)
        {
            if (mp.Pages.Remove(va / PageSize, out var e)) DropPage(e);
        }
    }

    /// <summary>Whether an access to the page is allowed: null, or the exception it raises.</summary>
    private static string? AccessFault(ModelProc mp, ulong page, bool write, out ModelEntry? e)
    {
        if (!mp.Pages.TryGetValue(page, out e)) return "SEGV";
        if (write ? (e.Prot & Prot.Write) == 0 : (e.Prot & (Prot.Read | Prot.Write | Prot.Exec)) == 0) return "SEGV";
        if (e.Page == null && e.Obj != null && e.Index >= e.Obj.Pages) return "BUS";
        return null;
    }

    private static ReadOnlySpan<byte> ReadSource(ModelEntry e)
    {
        if (e.Page != null) return e.Page.Data;
        if (e.Obj != null) return e.Obj.Data.AsSpan((int)(e.Index * PageSize), (int)PageSize);
        return new byte[PageSize];
    }

    private static Span<byte> WriteTarget(ModelEntry e)
    {
        if (e.Shared) return e.Obj!.Data.AsSpan((int)(e.Index * PageSize), (int)PageSize);
        if (e.Page == null)
        {
            var fresh = new ModelPage { MapCount = 1 };
            if (e.Obj != null) e.Obj.Data.AsSpan((int)(e.Index * PageSize), (int)PageSize).CopyTo(fresh.Data);
            e.Page = fresh;
        }
        else if (e.Page.MapCount > 1)
        {
            var copy = new ModelPage { MapCount = 1 };
            e.Page.Data.CopyTo(copy.Data, 0);
            e.Page.MapCount--;
            e.Page = copy;
        }
        e.Page.LazyFree = false;
        return e.Page.Data;
    }

    /// <summary>Model read of [addr, addr+len): the first faulting page's address and kind, or null with the bytes.</summary>
    private static (ulong FaultAddr, string? Fault) ModelRead(ModelProc mp, ulong addr, Span<byte> into)
    {
        int done = 0;
        while (done < into.Length)
        {
            ulong at = addr + (ulong)done;
            int inPage = (int)(at % PageSize);
            int chunk = Math.Min(into.Length - done, (int)PageSize - inPage);
            string? f = AccessFault(mp, at / PageSize, write: false, out var e);
            if (f != null) return (at, f);
            e!.Exclusive = false;
            ReadSource(e!).Slice(inPage, chunk).CopyTo(into.Slice(done, chunk));
            done += chunk;
        }
        return (0, null);
    }

    private static (ulong FaultAddr, string? Fault) ModelWrite(ModelProc mp, ulong addr, ReadOnlySpan<byte> data)
    {
        int done = 0;
        while (done < data.Length)
        {
            ulong at = addr + (ulong)done;
            int inPage = (int)(at % PageSize);
            int chunk = Math.Min(data.Length - done, (int)PageSize - inPage);
            string? f = AccessFault(mp, at / PageSize, write: true, out var e);
            if (f != null) return (at, f);
            e!.Exclusive = false;
            data.Slice(done, chunk).CopyTo(WriteTarget(e!).Slice(inPage, chunk));
            done += chunk;
        }
        return (0, null);
    }

    private void ExpectAccess(string what, (ulong FaultAddr, string? Fault) model, Exception? actual)
    {
        if (Trace) Console.WriteLine($"   {what} -> {Describe(actual)}");
        Count($"{_op.Kind}: {model.Fault ?? "ok"}");
        switch (model.Fault)
        {
            case null when actual == null: return;
            case "SEGV" when actual is SegmentationFault s && s.Address == model.FaultAddr: return;
            case "BUS" when actual is BusError b && b.Address == model.FaultAddr: return;
        }
        Fail($"{what}: model expects {(model.Fault == null ? "success" : $"{model.Fault} at 0x{model.FaultAddr:x}")}, simulator gave {Describe(actual)}");
    }

    // ---- syscalls -----------------------------------------------------------------------------------

    private void DoMmap(Op op)
    {
        var mp = Pick(op.P);
        if (mp == null) return;
        int a = op.A;
        int kindSel = a % 10;
        bool shared = kindSel is >= 5 and <= 6 or 9;
        bool anon = kindSel <= 6;
        Prot prot = ((a / 10) % 10) switch { < 7 => Prot.Read | Prot.Write, < 9 => Prot.Read, _ => Prot.None };
        int flagSel = (a / 100) % 20;
        var flags = (shared ? MapFlags.Shared : MapFlags.Private) | (anon ? MapFlags.Anonymous : 0);
        bool populate = flagSel <= 2, fixedMap = flagSel is >= 3 and <= 5, noReplace = flagSel == 6, invalid = flagSel == 7;
        if (populate) flags |= MapFlags.Populate;
        if (fixedMap) flags |= MapFlags.Fixed;
        if (noReplace) flags |= MapFlags.FixedNoReplace;

        int b = op.B;
        ulong pages = (b % 10) switch
        {
            <= 3 => 1 + (ulong)(b / 10) % 8,
            <= 6 => 1 + (ulong)(b / 10) % 64,
            <= 8 => 1 + (ulong)(b / 10) % 1024,
            _ => (b / 10) % 2 == 0 ? 512UL : 1024UL,
        };
        if (_thp && anon && !shared && (b / 10) % 3 == 0) pages = (b / 30) % 2 == 0 ? 512UL : 1024UL;
        ModelObject? file = anon ? null : _files[op.C % _files.Length];
        ulong offsetPages = file == null ? 0 : (ulong)(op.C / _files.Length) % (file.Pages + 2);
        if (file != null && (b / 7) % 4 != 0 && offsetPages < file.Pages)
        {
            offsetPages = (ulong)(op.C / _files.Length) % file.Pages;
            pages = 1 + (pages - 1) % (file.Pages - offsetPages);   // mostly inside the file
        }
        ulong len = pages * PageSize;
        ulong addr = 0;
        if (fixedMap || noReplace) addr = op.D % 2 == 0 ? PickPage(mp, op.D / 2, op.B) : ArenaAddr(op.D / 2);
        if (addr < 0x10000) addr = ArenaAddr(op.D);

        ulong length = len;
        Errno? expected = null;
        if (invalid)
        {
            switch (op.D % 3)
            {
                case 0: length = 0; break;
                case 1: flags |= MapFlags.Fixed; addr = ArenaAddr(op.D) + 123; break;
                default: flags &= ~(MapFlags.Shared | MapFlags.Private); break;
            }
            expected = Errno.EINVAL;
        }
        else if (noReplace && AnyMapped(mp, addr, len)) expected = Errno.EEXIST;

        ulong result = 0;
        var simFile = file?.File;
        var err = Try(() => result = mp.P.Mmap(length, prot, flags, simFile, offsetPages * PageSize, addr));
        if (err is ErrnoException { Errno: Errno.ENOMEM } && expected == null) Fail($"mmap ran out of memory: {Describe(err)}");
        ExpectErrno($"mmap({len:x}, {prot}, {flags}, {file}, +{offsetPages}p, 0x{addr:x})", expected, err);
        if (err != null) return;

        if (fixedMap || noReplace)
        {
            if (result != addr) Fail($"MAP_FIXED mmap returned 0x{result:x}, not 0x{addr:x}");
        }
        else
        {
            if (result % PageSize != 0) Fail($"mmap returned unaligned 0x{result:x}");
            if (AnyMapped(mp, result, len)) Fail($"mmap returned 0x{result:x}, overlapping existing mappings");
            if (anon && len >= PmdSize && result % PmdSize != 0) Fail($"anonymous mmap of {len:x} bytes returned 0x{result:x}, not 2 MiB aligned");
        }
        ModelUnmap(mp, result, len);
        ModelObject? obj = file;
        if (anon && shared) obj = new ModelObject($"shmem{_shmemCount++}", len, null);
        for (ulong i = 0; i < pages; i++)
        {
            var e = new ModelEntry { Prot = prot, Shared = shared, Obj = obj, Index = offsetPages + i };
            if (populate && !shared && file != null && (prot & Prot.Write) != 0 && e.Index < file.Pages)
            {
                e.Page = new ModelPage { MapCount = 1 };
                file.Data.AsSpan((int)(e.Index * PageSize), (int)PageSize).CopyTo(e.Page.Data);
            }
            mp.Pages[result / PageSize + i] = e;
        }
        if (_thp && anon && !shared && len >= PmdSize && (a / 2000) % 3 != 0)
        {
            var e2 = Try(() => mp.P.Madvise(result, len, Advice.HugePage));
            ExpectErrno("madvise(MADV_HUGEPAGE) after mmap", null, e2);
        }
    }

    private void DoMunmap(Op op)
    {
        var mp = Pick(op.P);
        if (mp == null) return;
        var (addr, len) = PickRange(mp, op.A, op.B, op.C);
        Errno? expected = null;
        if (op.D % 40 == 0) { addr += 100; expected = Errno.EINVAL; }
        else if (op.D % 40 == 1) { len = 0; expected = Errno.EINVAL; }
        var err = Try(() => mp.P.Munmap(addr, len));
        ExpectErrno($"munmap(0x{addr:x}, {len:x})", expected, err);
        if (err == null) ModelUnmap(mp, addr, len);
    }

    private void DoMprotect(Op op)
    {
        var mp = Pick(op.P);
        if (mp == null) return;
        var (addr, len) = PickRange(mp, op.A, op.B, op.C);
        Prot prot = (op.D % 4) switch { 0 or 1 => Prot.Read | Prot.Write, 2 => Prot.Read, _ => Prot.None };
        Errno? expected = null;
        if (op.D % 50 == 3) { addr += 8; expected = Errno.EINVAL; }
        else if (!Covered(mp, addr, len)) expected = Errno.ENOMEM;
        var err = Try(() => mp.P.Mprotect(addr, len, prot));
        ExpectErrno($"mprotect(0x{addr:x}, {len:x}, {prot})", expected, err);
        if (err != null) return;
        for (ulong va = addr; va < addr + len; va += PageSize) mp.Pages[va / PageSize].Prot = prot;
    }

    private void DoMadvise(Op op)
    {
        var mp = Pick(op.P);
        if (mp == null) return;
        var vmas = Vmas(mp);
        var (addr, len) = PickRange(mp, op.A, op.B, op.C);
        Advice advice = (op.D % 10) switch
        {
            <= 2 => Advice.DontNeed,
            <= 4 => Advice.Free,
            <= 6 => Advice.HugePage,
            7 => Advice.NoHugePage,
            8 => Advice.Collapse,
            _ => Advice.Normal,
        };
        Errno? expected = null;
        if (!Covered(mp, addr, len)) expected = Errno.ENOMEM;
        else
        {
            bool allPrivateAnon = true;
            for (ulong va = addr; va < addr + len; va += PageSize) allPrivateAnon &= mp.Pages[va / PageSize].PrivateAnon;
            if (advice == Advice.Free && !allPrivateAnon) expected = Errno.EINVAL;
            if (advice == Advice.Collapse && (!_thp || !allPrivateAnon)) expected = Errno.EINVAL;
        }
        // MADV_COLLAPSE's errno depends on every block's state before the call (see MmRunner.Collapse.cs).
        List<(ulong Start, ulong End)>? parts = null;
        List<CollapsePrediction>? predictions = null;
        if (advice == Advice.Collapse && expected == null)
        {
            parts = new();
            predictions = new();
            foreach (var v in vmas)
            {
                ulong s = Math.Max(addr, v.Start), t = Math.Min(addr + len, v.End);
                if (s >= t) continue;
                parts.Add((s, t));
                predictions.Add(PredictCollapsePart(mp, s, t));
            }
        }
        var err = Try(() => mp.P.Madvise(addr, len, advice));
        if (parts != null) CheckCollapse(mp, parts, predictions!, err, $"madvise(0x{addr:x}, {len:x}, {advice})");
        else ExpectErrno($"madvise(0x{addr:x}, {len:x}, {advice})", expected, err);
        if (err != null && advice != Advice.Collapse) return;
        switch (advice)
        {
            case Advice.DontNeed:
                for (ulong va = addr; va < addr + len; va += PageSize)
                {
                    var e = mp.Pages[va / PageSize];
                    if (!e.Shared) DropPage(e);
                }
                break;
            case Advice.Free:
                for (ulong va = addr; va < addr + len; va += PageSize)
                {
                    var e = mp.Pages[va / PageSize];
                    if (e.Page is { MapCount: 1 } page && !e.Exclusive && (!_devices || LazyFreeCandidate(mp, va))) page.LazyFree = true;
                }
                break;
            case Advice.Collapse when expected == null:
                // Whichever blocks collapsed (all of them on success; some before a failure), their
                // pages were copied into a fresh THP, which is no longer lazy-free. Content must not change.
                foreach (var v in vmas)
                {
                    ulong s = Math.Max(addr, v.Start), t = Math.Min(addr + len, v.End);
                    for (ulong block = (s + PmdSize - 1) & ~(PmdSize - 1); block + PmdSize <= t; block += PmdSize)
                    {
                        if (!mp.P.Mm.EntryAt(block).IsHuge) continue;
                        for (ulong va = block; va < block + PmdSize; va += PageSize)
                            if (mp.Pages.TryGetValue(va / PageSize, out var e) && e.Page != null) e.Page.LazyFree = false;
                    }
                }
                break;
        }
    }

    private void DoMremap(Op op)
    {
        var mp = Pick(op.P);
        if (mp == null) return;
        var vmas = Vmas(mp);
        int c = op.C - op.C % 4 + (op.C % 8 == 7 ? 2 : op.C % 4 == 2 ? 1 : op.C % 4);   // mostly inside one VMA, sometimes spanning
        var (oldAddr, oldLen) = PickRange(mp, op.A, op.B, c);
        ulong oldPages = oldLen / PageSize;
        int d = op.D;
        var flags = (d % 20) switch
        {
            <= 4 => MremapFlags.None,
            <= 12 => MremapFlags.MayMove,
            <= 16 => MremapFlags.MayMove | MremapFlags.Fixed,
            <= 18 => MremapFlags.MayMove | MremapFlags.DontUnmap,
            _ => MremapFlags.Fixed,
        };
        ulong newPages = ((d / 20) % 6) switch
        {
            0 => 1 + (ulong)(d / 120) % oldPages,
            1 => oldPages,
            2 => oldPages + 1 + (ulong)(d / 120) % 8,
            3 => oldPages + 1 + (ulong)(d / 120) % 512,
            4 => 512,
            _ => 1024,
        };
        if ((flags & MremapFlags.DontUnmap) != 0 && (d / 120) % 5 != 0) newPages = oldPages;
        ulong newLen = newPages * PageSize;
        ulong newAddr = 0;
        if ((flags & MremapFlags.Fixed) != 0)
            newAddr = (d / 2400) % 3 == 0 ? PickPage(mp, op.B, d / 7200) : ArenaAddr(d / 7200) & ~((d / 7200) % 2 == 0 ? PmdSize - 1 : 0);
        if (newAddr != 0 && newAddr < 0x10000) newAddr = ArenaAddr(d);
        bool mayMove = (flags & MremapFlags.MayMove) != 0, fixedAddr = (flags & MremapFlags.Fixed) != 0, dontUnmap = (flags & MremapFlags.DontUnmap) != 0;

        // Predict.
        Errno? expected = null;
        var vma = FindVma(vmas, oldAddr);
        bool inOne = vma != null && oldAddr + oldLen <= vma.End;
        if ((fixedAddr || dontUnmap) && !mayMove) expected = Errno.EINVAL;
        else if (dontUnmap && oldLen != newLen) expected = Errno.EINVAL;
        else if (fixedAddr && newAddr < oldAddr + oldLen && oldAddr < newAddr + newLen) expected = Errno.EINVAL;
        else if (!inOne) expected = Errno.EFAULT;
        string what = $"mremap(0x{oldAddr:x}, {oldLen:x}, {newLen:x}, {flags}, 0x{newAddr:x})";
        ModelEntry? first = null;
        if (expected == null)
        {
            // The model's own view: the range must be mapped uniformly (one VMA).
            if (!Covered(mp, oldAddr, oldLen)) Fail($"{what}: the simulator's VMA {vma} covers pages the model has unmapped");
            first = mp.Pages[oldAddr / PageSize];
        }
        bool inPlace = false;
        if (expected == null && !fixedAddr && !(newLen <= oldLen && !dontUnmap))
        {
            inPlace = !dontUnmap && oldAddr + oldLen == vma!.End && !AnyMapped(mp, vma.End, oldAddr + newLen - vma.End);
            if (!inPlace && !mayMove) expected = Errno.ENOMEM;
        }

        ulong result = 0;
        var err = Try(() => result = mp.P.Mremap(oldAddr, oldLen, newLen, flags, newAddr));
        ExpectErrno(what, expected, err);
        if (err != null) return;

        ModelEntry Extension(ulong k) => new() { Prot = first!.Prot, Shared = first.Shared, Obj = first.Obj, Index = first.Index + k };

        if (fixedAddr)
        {
            if (result != newAddr) Fail($"{what} returned 0x{result:x}");
            ModelUnmap(mp, newAddr, newLen);
            if (oldLen > newLen) { ModelUnmap(mp, oldAddr + newLen, oldLen - newLen); oldLen = newLen; }
            ModelMove(mp, oldAddr, oldLen, newAddr, newLen, dontUnmap, Extension);
        }
        else if (newLen <= oldLen && !dontUnmap)
        {
            if (result != oldAddr) Fail($"{what} returned 0x{result:x}, expected in place");
            ModelUnmap(mp, oldAddr + newLen, oldLen - newLen);
        }
        else if (inPlace)
        {
            if (result != oldAddr) Fail($"{what} returned 0x{result:x}, expected growth in place");
            for (ulong k = oldPages; k < newPages; k++) mp.Pages[oldAddr / PageSize + k] = Extension(k);
        }
        else
        {
            if (result % PageSize != 0 || AnyMapped(mp, result, newLen)) Fail($"{what} moved to 0x{result:x}, overlapping existing mappings");
            if (first!.PrivateAnon && newLen >= PmdSize && result % PmdSize != 0) Fail($"{what} moved to 0x{result:x}, not 2 MiB aligned");
            ModelMove(mp, oldAddr, oldLen, result, newLen, dontUnmap, Extension);
        }
    }

    private static void ModelMove(ModelProc mp, ulong oldAddr, ulong oldLen, ulong newAddr, ulong newLen, bool dontUnmap, Func<ulong, ModelEntry> extension)
    {
        ulong oldPages = oldLen / PageSize, newPages = newLen / PageSize;
        var moved = new ModelEntry[newPages];
        for (ulong k = 0; k < newPages; k++)
        {
            if (k < oldPages)
            {
                var e = mp.Pages[oldAddr / PageSize + k];
                moved[k] = e.Clone();
                if (dontUnmap)
                {
                    e.Page = null;   // the page moved away
                    e.Exclusive = false;   // the old range refaults its backing (zero, file or shmem)
                }
                else mp.Pages.Remove(oldAddr / PageSize + k);
            }
            else moved[k] = extension(k);
        }
        for (ulong k = 0; k < newPages; k++) mp.Pages[newAddr / PageSize + k] = moved[k];
    }

    private void DoFork(Op op)
    {
        var mp = Pick(op.P);
        if (mp == null || _procs.Count >= MaxProcs) return;
        var child = new ModelProc(mp.P.Fork("c"));
        Count("Fork");
        foreach (var (page, e) in mp.Pages)
        {
            e.Exclusive = false;   // copy_nonpresent_pte restores a device-exclusive entry first
            var copy = e.Clone();
            if (copy.Page != null && _devices && CopiedAtFork(mp, child, page * PageSize))
            {
                // A maybe-DMA-pinned anonymous page is copied for the child (the parent keeps the pinned one).
                var fresh = new ModelPage { MapCount = 1 };
                copy.Page.Data.CopyTo(fresh.Data, 0);
                copy.Page = fresh;
                Count("Fork: pinned page copied");
            }
            else if (copy.Page != null) copy.Page.MapCount++;
            child.Pages[page] = copy;
        }
        _procs.Add(child);
    }

    private void DoExit(Op op)
    {
        if (_procs.Count < 2) return;
        var mp = Pick(op.P)!;
        mp.P.Exit();
        foreach (var e in mp.Pages.Values) DropPage(e);
        _procs.Remove(mp);
    }

    private void DoReclaim()
    {
        var pinned = _devices ? PinnedLazyPages() : null;
        _machine.Reclaim();
        foreach (var mp in _procs)
        {
            foreach (var e in mp.Pages.Values)
            {
                if (e.Page is not { LazyFree: true } page || !e.PrivateAnon) continue;
                page.LazyFree = false;
                if (page.MapCount == 1 && pinned != null && pinned.Contains(e)) { Count("Reclaim: pinned lazy-free page kept"); continue; }
                if (page.MapCount == 1) { DropPage(e); Count("Reclaim: page with data dropped"); }
            }
        }
    }

    private void DoFileIo(Op op)
    {
        var f = _files[op.P % _files.Length];
        ulong offset = (ulong)op.A % (f.Size + 200);
        int len = 1 + op.B % 6000;
        if (op.C % 2 == 0)
        {
            var data = Bytes(op.D, len);
            int n = 0;
            var err = Try(() => n = f.File!.Pwrite(offset, data));
            Errno? expected = offset >= f.Size ? Errno.ENOSPC : null;
            ExpectErrno($"pwrite({f}, {offset}, {len})", expected, err);
            if (err != null) return;
            int m = (int)Math.Min((ulong)len, f.Size - offset);
            if (n != m) Fail($"pwrite wrote {n}, expected {m}");
            data.AsSpan(0, m).CopyTo(f.Data.AsSpan((int)offset));
        }
        else
        {
            var buf = new byte[len];
            int n = f.File!.Pread(offset, buf);
            int m = offset >= f.Size ? 0 : (int)Math.Min((ulong)len, f.Size - offset);
            if (n != m) Fail($"pread read {n}, expected {m}");
            if (!buf.AsSpan(0, n).SequenceEqual(f.Data.AsSpan((int)Math.Min(offset, f.Size), n))) Fail($"pread({f}, {offset}, {len}) returned different bytes");
        }
    }

    // ---- CPU accesses ---------------------------------------------------------------------------------

    private static byte[] Bytes(int seed, int len)
    {
        var data = new byte[len];
        uint x = (uint)seed | 1;
        for (int i = 0; i < len; i++)
        {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            data[i] = (byte)x;
        }
        return data;
    }

    private readonly List<ulong> _hot = new();

    private void Remember(ulong addr)
    {
        if (_hot.Count < 64) _hot.Add(addr);
        else _hot[(int)(addr % 64)] = addr;
    }

    private ulong AccessAddr(ModelProc mp, Op op, int size)
    {
        if (op.A % 5 < 2 && _hot.Count > 0) return _hot[op.B % _hot.Count] + (ulong)(op.C % 16);   // near an earlier write
        ulong page = PickPage(mp, op.A, op.B);
        int sel = op.C % 4;
        ulong off = sel == 0 ? PageSize - 1 - (ulong)(op.C / 4) % (ulong)Math.Min(size, (int)PageSize) : (ulong)(op.C / 4) % PageSize;
        return page + off;
    }

    private void DoLoad(Op op)
    {
        var mp = Pick(op.P);
        if (mp == null) return;
        int size = 1 << (op.D % 4);
        ulong addr = AccessAddr(mp, op, size + 1);
        Span<byte> expected = stackalloc byte[8];
        var model = ModelRead(mp, addr, expected[..size]);
        ulong got = 0;
        var err = Try(() => got = size switch
        {
            1 => mp.P.Load<byte>(addr),
            2 => mp.P.Load<ushort>(addr),
            4 => mp.P.Load<uint>(addr),
            _ => mp.P.Load<ulong>(addr),
        });
        ExpectAccess($"{mp}: load{size * 8} 0x{addr:x}", model, err);
        if (err != null) return;
        ulong want = BinaryPrimitives.ReadUInt64LittleEndian(expected);
        if (got != want) Fail($"{mp}: load{size * 8} 0x{addr:x} returned 0x{got:x}, model says 0x{want:x}");
    }

    private void DoStore(Op op)
    {
        var mp = Pick(op.P);
        if (mp == null) return;
        int size = 1 << (op.D % 4);
        ulong addr = AccessAddr(mp, op, size + 1);
        var value = BinaryPrimitives.ReadUInt64LittleEndian(Bytes(op.D, 8));
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        var model = ModelWrite(mp, addr, bytes[..size]);
        var err = Try(() =>
        {
            switch (size)
            {
                case 1: mp.P.Store(addr, (byte)value); break;
                case 2: mp.P.Store(addr, (ushort)value); break;
                case 4: mp.P.Store(addr, (uint)value); break;
                default: mp.P.Store(addr, value); break;
            }
        });
        ExpectAccess($"{mp}: store{size * 8} 0x{addr:x}", model, err);
        if (err == null) Remember(addr);
        if (err == null && mp.P.Mm.EntryAt(addr).IsHuge) Count("Store: into a THP");
    }

    private static int AccessLength(int c) => (c % 8) switch
    {
        <= 5 => 1 + (c / 8) % 64,
        6 => 1 + (c / 8) % 4096,
        _ => 1 + (c / 8) % 9000,
    };

    private void DoRead(Op op)
    {
        var mp = Pick(op.P);
        if (mp == null) return;
        int len = AccessLength(op.D);
        ulong addr = AccessAddr(mp, op, len);
        var expected = new byte[len];
        var model = ModelRead(mp, addr, expected);
        var got = new byte[len];
        var err = Try(() => mp.P.Read(addr, got));
        ExpectAccess($"{mp}: read 0x{addr:x}+{len}", model, err);
        if (err == null && expected.AsSpan().IndexOfAnyExcept((byte)0) >= 0) Count("Read: non-zero data");
        if (err == null && !got.AsSpan().SequenceEqual(expected))
        {
            int i = got.AsSpan().CommonPrefixLength(expected);
            Fail($"{mp}: read 0x{addr:x}+{len}: byte at 0x{addr + (ulong)i:x} is 0x{got[i]:x2}, model says 0x{expected[i]:x2}");
        }
    }

    private void DoWrite(Op op)
    {
        var mp = Pick(op.P);
        if (mp == null) return;
        int len = AccessLength(op.D);
        ulong addr = AccessAddr(mp, op, len);
        var data = Bytes(op.D ^ op.C, len);
        var model = ModelWrite(mp, addr, data);
        var err = Try(() => mp.P.Write(addr, data));
        ExpectAccess($"{mp}: write 0x{addr:x}+{len}", model, err);
        if (err == null) Remember(addr + (ulong)(op.B % len));
    }

    // ---- whole-state checks ---------------------------------------------------------------------------

    /// <summary>The simulator's VMAs cover exactly the model's pages, with the model's protection and backing.</summary>
    private void CheckVmas()
    {
        foreach (var mp in _procs)
        {
            ulong total = 0;
            foreach (var v in Vmas(mp))
            {
                total += v.Length / PageSize;
                for (ulong va = v.Start; va < v.End; va += PageSize)
                {
                    if (!mp.Pages.TryGetValue(va / PageSize, out var e)) { Fail($"{mp}: VMA {v} maps 0x{va:x}, the model does not"); return; }
                    if (e.Prot != v.Prot || e.Shared != v.IsShared || (e.Obj == null) != (v.File == null)
                        || (e.Obj?.File != null && !ReferenceEquals(e.Obj.File, v.File))
                        || (e.Obj != null && e.Index != v.PgOff + (va - v.Start) / PageSize))
                        Fail($"{mp}: VMA {v} at 0x{va:x} disagrees with the model's page ({e.Prot}, shared {e.Shared}, {e.Obj}+{e.Index})");
                }
            }
            if (total != (ulong)mp.Pages.Count) Fail($"{mp}: VMAs cover {total} pages, the model maps {mp.Pages.Count}");
        }
    }

    /// <summary>Reads back every readable page the model holds data for and compares it.</summary>
    private void SweepContents()
    {
        var buf = new byte[PageSize];
        foreach (var mp in _procs)
        {
            int budget = 3000;
            foreach (var (page, e) in mp.Pages)
            {
                if (e.Page == null && e.Obj == null) continue;
                if (AccessFault(mp, page, write: false, out _) != null) continue;
                if (--budget < 0) break;
                var err = Try(() => mp.P.Read(page * PageSize, buf));
                if (err != null) Fail($"{mp}: sweep read of 0x{page * PageSize:x} failed: {Describe(err)}");
                var want = ReadSource(e);
                if (!want.SequenceEqual(buf))
                {
                    int i = want.CommonPrefixLength(buf);
                    Fail($"{mp}: page 0x{page * PageSize:x} ({e.Obj}+{e.Index}, private copy {e.Page != null}) byte {i} is 0x{buf[i]:x2}, model says 0x{want[i]:x2}");
                }
            }
        }
    }
}
