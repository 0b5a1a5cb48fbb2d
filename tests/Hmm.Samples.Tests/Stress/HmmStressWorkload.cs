using Stopwatch = System.Diagnostics.Stopwatch;
using Hmm.Runtime;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Samples.TestHmm;

namespace Hmm.Samples.Tests.Stress;

/// <summary>The variations of the issue-8 workload a stress case adds on top of the base one.</summary>
[Flags]
public enum StressVariant
{
    /// <summary>The workload exactly as issue 8 writes it: one CPU, one device and one churn thread.</summary>
    None = 0,
    /// <summary>Two CPU threads (even and odd pages of the first half) and two device threads.</summary>
    MoreThreads = 1,
    /// <summary>The device threads also take device-exclusive (atomic) access on the first half (make_device_exclusive).</summary>
    Exclusive = 2,
    /// <summary>A thread splits the first half's THPs (MADV_NOHUGEPAGE on an unaligned piece splits the VMA and the PMD) and collapses them back.</summary>
    ThpSplit = 4,
    /// <summary>The churn thread also munmaps and re-maps, or mremaps away and back, pieces of the range the device thread migrates.</summary>
    MunmapMremap = 8,
    /// <summary>A thread keeps evicting and unplugging the device's memory (HMM_DMIRROR_RELEASE) under the migrations.</summary>
    DeviceRemoval = 16,
    /// <summary>Forked children are torn down by the OOM reaper (non-blockable UNMAP) instead of exiting, while their parent's pages migrate.</summary>
    OomReap = 32,
}

/// <summary>
/// The concurrent workload of issue 8: one process with a 512-page private anonymous region (2 MiB
/// aligned, the first 256 pages under MADV_HUGEPAGE, every page written once) opened by a dmirror
/// device, and threads running at once for <see cref="Duration"/>:
/// <list type="bullet">
/// <item>CPU — on the first 256 pages only: store a new value, load it back at once (must be
/// equal), remember it;</item>
/// <item>device — random sub-ranges of 1–64 pages anywhere in the 512: MigrateToDevice,
/// MigrateToSystem, Read (any errno is fine, an exception is not);</item>
/// <item>churn — on the last 256 pages: mprotect read-only, mprotect read-write,
/// MADV_DONTNEED, mprotect read-write then a store; and fork with the child writing one page of
/// the first half and exiting (copy-on-write: the parent must never see it).</item>
/// </list>
/// At the end every page of the first half must hold the CPU thread's last value. A thread that
/// makes no progress for <see cref="StallLimit"/> is reported as a deadlock, with the operation
/// it was in.
/// </summary>
public sealed class HmmStressWorkload
{
    /// <summary>Pages in the region.</summary>
    public const int RegionPages = 512;

    /// <summary>Pages of the first (CPU, THP) half.</summary>
    public const int HalfPages = 256;

    private readonly Machine _machine;
    private readonly Process _process;
    private readonly int _minor;
    private readonly int _seed;
    private readonly StressVariant _variant;
    private readonly List<StressThread> _threads = new();
    private readonly ulong[] _last = new ulong[HalfPages];
    private ulong _region;
    private Hmm.Samples.TestHmm.Dmirror? _mirror;
    private volatile bool _stop;

    /// <summary>A workload on <paramref name="process"/> with dmirror minor <paramref name="minor"/>.</summary>
    public HmmStressWorkload(Machine machine, Process process, int minor, int seed, StressVariant variant, TimeSpan duration)
    {
        _machine = machine;
        _process = process;
        _minor = minor;
        _seed = seed;
        _variant = variant;
        Duration = duration;
    }

    /// <summary>How long the threads run.</summary>
    public TimeSpan Duration { get; }

    /// <summary>How long a thread may go without completing one operation before the run is declared deadlocked.</summary>
    public static TimeSpan StallLimit { get; } = TimeSpan.FromSeconds(90);

    /// <summary>The threads, with their operation counts, once <see cref="Run"/> returned.</summary>
    public IReadOnlyList<StressThread> Threads => _threads;

    /// <summary>
    /// Sets the region up, runs every thread for <see cref="Duration"/>, joins them, checks the
    /// first half, then closes the device and exits the process. Throws on the first failure of
    /// any thread (with its stack), on a stall, or on lost data.
    /// </summary>
    public void Run()
    {
        var device = DmirrorDevice.Create(_machine, _minor);
        _region = _process.Mmap((ulong)RegionPages * Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        if (_region % Page.PmdSize != 0) throw new InvalidOperationException($"region 0x{_region:x} is not 2 MiB aligned");
        // The issue's workload: only the first half under MADV_HUGEPAGE (a 1 MiB VMA, so in fact no
        // THP fits). The THP variant advises the whole 2 MiB region, which the first writes then
        // back with one 2 MiB folio that migrations, COW and the thread below split.
        bool thp = (_variant & StressVariant.ThpSplit) != 0;
        _process.Madvise(_region, (ulong)(thp ? RegionPages : HalfPages) * Page.Size, Advice.HugePage);
        for (int i = 0; i < RegionPages; i++)
        {
            ulong v = Initial(i);
            _process.Store(PageAddress(i), v);
            if (i < HalfPages) _last[i] = v;
        }
        _mirror = device.Open(_process);

        bool more = (_variant & StressVariant.MoreThreads) != 0;
        int cpuThreads = more ? 2 : 1;
        for (int t = 0; t < cpuThreads; t++)
        {
            int first = t, stride = cpuThreads;
            Add($"cpu{t}", r => CpuThread(r, first, stride));
        }
        int deviceThreads = more ? 2 : 1;
        for (int t = 0; t < deviceThreads; t++) Add($"device{t}", DeviceThread);
        Add("churn", ChurnThread);
        if ((_variant & StressVariant.ThpSplit) != 0) Add("thp", ThpThread);
        if ((_variant & StressVariant.DeviceRemoval) != 0) Add("remove", RemovalThread);

        var clock = Stopwatch.StartNew();
        foreach (var t in _threads) t.Start();
        while (clock.Elapsed < Duration && !_threads.Any(t => t.Failure != null)) Thread.Sleep(20);
        _stop = true;
        WaitForThreads();
        var failed = _threads.FirstOrDefault(t => t.Failure != null);
        if (failed != null) throw new StressFailure($"thread {failed.Name} failed in {failed.Operation} after {failed.Operations} operations (seed {_seed}, minor {_minor}, {_variant})", failed.Failure!);

        for (int i = 0; i < HalfPages; i++)
        {
            ulong seen = _process.Load<ulong>(PageAddress(i));
            if (seen != _last[i]) throw new StressFailure($"page {i} holds 0x{seen:x}, the CPU thread last wrote 0x{_last[i]:x} (seed {_seed}, minor {_minor}, {_variant})");
        }
        _mirror.Close();
        _process.Exit();
    }

    private void WaitForThreads()
    {
        // No sleeps decide anything here: a thread is deadlocked when its operation counter stops
        // moving for StallLimit while it has not finished.
        foreach (var t in _threads)
        {
            while (!t.Join(TimeSpan.FromSeconds(1)))
            {
                if (t.SinceProgress > StallLimit)
                    throw new StressFailure($"deadlock: thread {t.Name} made no progress for {StallLimit.TotalSeconds:0} s in {t.Operation} after {t.Operations} operations (seed {_seed}, minor {_minor}, {_variant}); threads: {string.Join(", ", _threads.Select(x => $"{x.Name}={x.Operation}"))}");
            }
        }
    }

    private void Add(string name, Action<StressThread> body)
    {
        var t = new StressThread(name, new Random(HashCode.Combine(_seed, name)), body, () => _stop);
        _threads.Add(t);
    }

    private ulong PageAddress(int i) => _region + ((ulong)i << Page.Shift);

    private static ulong Initial(int page) => 0x1_0000_0000UL | (uint)page;

    private void CpuThread(StressThread me, int first, int stride)
    {
        ulong counter = (ulong)first << 56;
        int slots = (HalfPages - first + stride - 1) / stride;
        while (!me.ShouldStop)
        {
            int page = first + (me.Random.Next(slots) * stride);
            ulong value = ++counter | 0x8000_0000_0000_0000UL;
            ulong addr = PageAddress(page);
            me.Begin("store");
            _process.Store(addr, value);
            me.Begin("load");
            ulong seen = _process.Load<ulong>(addr);
            if (seen != value) throw new StressFailure($"page {page}: loaded 0x{seen:x} right after storing 0x{value:x}");
            _last[page] = value;
            me.Done();
        }
    }

    private void DeviceThread(StressThread me)
    {
        var buffer = new byte[64 * Page.Size];
        bool exclusive = (_variant & StressVariant.Exclusive) != 0;
        var mirror = _mirror!;
        while (!me.ShouldStop)
        {
            int npages = me.Random.Next(1, 65);
            int first = me.Random.Next(RegionPages);
            npages = Math.Min(npages, RegionPages - first);
            ulong addr = PageAddress(first);
            int op = me.Random.Next(exclusive ? 5 : 3);
            switch (op)
            {
                case 0:
                    me.Begin("MigrateToDevice");
                    mirror.MigrateToDevice(addr, npages, buffer, out _);
                    break;
                case 1:
                    me.Begin("MigrateToSystem");
                    mirror.MigrateToSystem(addr, npages, out _);
                    break;
                case 2:
                    me.Begin("Read");
                    mirror.Read(addr, npages, buffer, out _);
                    break;
                case 3:
                    me.Begin("Exclusive");
                    mirror.Exclusive(addr, npages, buffer, out _);
                    break;
                default:
                    me.Begin("CheckExclusive");
                    mirror.CheckExclusive(addr, npages);
                    break;
            }
            me.Done();
        }
    }

    private void ChurnThread(StressThread me)
    {
        bool remap = (_variant & StressVariant.MunmapMremap) != 0;
        bool reap = (_variant & StressVariant.OomReap) != 0;
        ulong scratch = remap ? _process.Mmap(64UL * Page.Size, Prot.Read, MapFlags.Private | MapFlags.Anonymous) : 0;
        ulong childValue = 0xC0DE_0000_0000_0000UL;
        while (!me.ShouldStop)
        {
            int npages = me.Random.Next(1, 65);
            int first = HalfPages + me.Random.Next(HalfPages);
            npages = Math.Min(npages, RegionPages - first);
            ulong addr = PageAddress(first), len = (ulong)npages << Page.Shift;
            int op = me.Random.Next(remap ? 7 : 5);
            switch (op)
            {
                case 0:
                    me.Begin("mprotect(READ)");
                    _process.Mprotect(addr, len, Prot.Read);
                    break;
                case 1:
                    me.Begin("mprotect(READ|WRITE)");
                    _process.Mprotect(addr, len, Prot.Read | Prot.Write);
                    break;
                case 2:
                    me.Begin("madvise(DONTNEED)");
                    _process.Madvise(addr, len, Advice.DontNeed);
                    break;
                case 3:
                    me.Begin("mprotect(READ|WRITE)+store");
                    _process.Mprotect(addr, len, Prot.Read | Prot.Write);
                    _process.Store(addr, childValue ^ (ulong)first);
                    break;
                case 4:
                {
                    me.Begin("fork");
                    var child = _process.Fork("child");
                    int page = me.Random.Next(HalfPages);
                    me.Begin("child store");
                    child.Store(PageAddress(page), ++childValue);
                    if (child.Load<ulong>(PageAddress(page)) != childValue) throw new StressFailure($"the child lost its own store to page {page}");
                    if (reap && me.Random.Next(2) == 0)
                    {
                        me.Begin("child OOM reap");
                        child.OomKill();
                    }
                    me.Begin("child exit");
                    child.Exit();
                    break;
                }
                case 5:
                    me.Begin("munmap+mmap(FIXED)");
                    _process.Munmap(addr, len);
                    _process.Mmap(len, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous | MapFlags.Fixed, addr: addr);
                    break;
                default:
                    me.Begin("mremap away and back");
                    // EFAULT when mprotect split the range into several VMAs: a failed syscall, fine.
                    try { _process.Mremap(addr, len, len, MremapFlags.MayMove | MremapFlags.Fixed, scratch); }
                    catch (ErrnoException e) when (e.Errno == Errno.EFAULT) { break; }
                    _process.Mremap(scratch, len, len, MremapFlags.MayMove | MremapFlags.Fixed, addr);
                    break;
            }
            me.Done();
        }
    }

    private void ThpThread(StressThread me)
    {
        while (!me.ShouldStop)
        {
            // An unaligned piece of the THP half: splitting the VMA there splits the PMD (and the
            // folio once migration or COW touches a subpage); collapsing puts a THP back.
            int first = 1 + me.Random.Next(HalfPages - 2);
            int npages = 1 + me.Random.Next(Math.Min(32, HalfPages - 1 - first));
            ulong addr = PageAddress(first), len = (ulong)npages << Page.Shift;
            me.Begin("madvise(NOHUGEPAGE)");
            _process.Madvise(addr, len, Advice.NoHugePage);
            me.Begin("madvise(HUGEPAGE)");
            _process.Madvise(addr, len, Advice.HugePage);
            me.Begin("madvise(COLLAPSE)");
            // Collapse fails with an errno when munmap left a hole or a page is busy: fine.
            try { _process.Madvise(_region, Page.PmdSize, Advice.Collapse); }
            catch (ErrnoException) { }
            me.Done();
        }
    }

    private void RemovalThread(StressThread me)
    {
        var mirror = _mirror!;
        while (!me.ShouldStop)
        {
            me.Begin("Release");
            mirror.Release();
            me.Done();
            me.Begin("pause");
            Thread.Yield();
        }
    }
}

/// <summary>One thread of a stress run: its name, random source, operation counter and failure.</summary>
public sealed class StressThread
{
    private readonly Thread _thread;
    private readonly Func<bool> _stop;
    private long _operations;
    private long _progressTicks = Stopwatch.GetTimestamp();
    private volatile string _operation = "start";

    internal StressThread(string name, Random random, Action<StressThread> body, Func<bool> stop)
    {
        Name = name;
        Random = random;
        _stop = stop;
        _thread = new Thread(() =>
        {
            try
            {
                body(this);
                _operation = "finished";
            }
            catch (Exception e) { Failure = e; }
        }) { IsBackground = true, Name = "stress " + name };
    }

    /// <summary>The thread's name.</summary>
    public string Name { get; }

    /// <summary>Its random source (seeded from the run's seed and the name).</summary>
    public Random Random { get; }

    /// <summary>Operations completed.</summary>
    public long Operations => Interlocked.Read(ref _operations);

    /// <summary>The operation in progress.</summary>
    public string Operation => _operation;

    /// <summary>The exception the thread ended with, if any.</summary>
    public Exception? Failure { get; private set; }

    internal bool ShouldStop => _stop();

    internal TimeSpan SinceProgress => Stopwatch.GetElapsedTime(Interlocked.Read(ref _progressTicks));

    internal void Start() => _thread.Start();

    internal bool Join(TimeSpan timeout) => _thread.Join(timeout);

    internal void Begin(string operation)
    {
        _operation = operation;
        Interlocked.Exchange(ref _progressTicks, Stopwatch.GetTimestamp());
    }

    internal void Done()
    {
        Interlocked.Increment(ref _operations);
        Interlocked.Exchange(ref _progressTicks, Stopwatch.GetTimestamp());
    }
}

/// <summary>A stress run found a failure.</summary>
public sealed class StressFailure : Exception
{
    /// <summary>Creates the failure.</summary>
    public StressFailure(string message) : base(message) { }

    /// <summary>Creates the failure with its cause.</summary>
    public StressFailure(string message, Exception inner) : base(message + ": " + inner.GetType().Name + ": " + inner.Message, inner) { }
}
