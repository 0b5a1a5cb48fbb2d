using BenchmarkDotNet.Attributes;
using Hmm.Runtime;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;

namespace Hmm.Benchmarks;

/// <summary>
/// Target 2 (foundation issue): munmap of one page with 10,000 interval notifiers registered
/// (one of them overlapping the page) costs at most 2× the same munmap with 10 notifiers —
/// dispatch walks an interval tree, O(log n + hits), never the whole list.
/// </summary>
/// <remarks>
/// <para>Each case has its own process. In <see cref="GlobalSetup"/> the notifiers, with no-op
/// ops, are inserted at addresses spread evenly over the whole user address space; exactly one
/// of them covers the benchmarked page, so every munmap invokes exactly one callback.</para>
/// <para>Each operation unmaps the populated page, maps it again with MAP_FIXED and touches it
/// so the next operation again unmaps a populated page. The re-mmap and the write fault raise
/// no notifier event and cost the same in both cases; they only dilute the difference, so the
/// ratio is, if anything, an under-estimate of the munmap's own sensitivity to the notifier
/// count. The ratio is what the target is about.</para>
/// </remarks>
[MemoryDiagnoser]
public class NotifierBenchmarks
{
    /// <summary>The benchmarked page: far from every other VMA (there are none) and from the spread notifiers.</summary>
    private const ulong PageAddress = 0x0000_7000_0000_0000;

    /// <summary>Length of each spread notifier's interval.</summary>
    private const ulong SpreadLength = 16 * Page.Size;

    private Machine _machine = null!;
    private Case _few = null!, _many = null!;

    /// <summary>Boots the machine and builds the 10- and 10,000-notifier processes.</summary>
    [GlobalSetup]
    public void GlobalSetup()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 64L << 20, LockValidation = false });
        _few = new Case(_machine, 10);
        _many = new Case(_machine, 10_000);
    }

    /// <summary>Removes the notifiers and tears the machine down.</summary>
    [GlobalCleanup]
    public void GlobalCleanup()
    {
        _few.Dispose();
        _many.Dispose();
        _machine.Dispose();
    }

    /// <summary>Baseline: munmap (+ MAP_FIXED re-mmap and touch) of one page with 10 notifiers.</summary>
    [Benchmark(Baseline = true)]
    public void Munmap_10Notifiers() => _few.UnmapOnePage();

    /// <summary>The same with 10,000 notifiers.</summary>
    [Benchmark]
    public void Munmap_10000Notifiers() => _many.UnmapOnePage();

    private sealed class Case : IDisposable
    {
        private readonly Process _process;
        private readonly List<IntervalNotifier> _notifiers = new();

        public Case(Machine machine, int count)
        {
            _process = machine.CreateProcess($"notifiers-{count}");
            var ops = new NoOpOps();
            Insert(ops, PageAddress, Page.Size);
            ulong stride = (AddressSpace.TaskSize - AddressSpace.MmapMinAddr) / (ulong)(count - 1) & ~Page.OffsetMask;
            for (int i = 0; _notifiers.Count < count; i++)
            {
                ulong start = AddressSpace.MmapMinAddr + ((ulong)i * stride);
                if (start < PageAddress + Page.Size && PageAddress < start + SpreadLength) continue;   // keep a single hit
                Insert(ops, start, SpreadLength);
            }
            _process.Mmap(Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous | MapFlags.Fixed, addr: PageAddress);
            _process.Store(PageAddress, 1UL);

            // Sanity: one operation dispatches exactly one callback (the overlapping notifier).
            long before = ops.Invocations;
            UnmapOnePage();
            if (ops.Invocations - before != 1)
                throw new InvalidOperationException($"{count} notifiers: one munmap made {ops.Invocations - before} callbacks, expected 1");
        }

        private void Insert(NoOpOps ops, ulong start, ulong length)
        {
            var notifier = new IntervalNotifier(ops);
            Errno rc = notifier.Insert(_process.Mm, start, length);
            if (rc != Errno.Ok) throw new InvalidOperationException($"insert [0x{start:x}, +0x{length:x}) failed: {rc}");
            _notifiers.Add(notifier);
        }

        public void UnmapOnePage()
        {
            _process.Munmap(PageAddress, Page.Size);
            _process.Mmap(Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous | MapFlags.Fixed, addr: PageAddress);
            _process.Store(PageAddress, 1UL);
        }

        public void Dispose()
        {
            foreach (var n in _notifiers) n.Remove();
            _process.Exit();
        }
    }

    /// <summary>A driver that mirrors nothing: records the sequence as the protocol requires and returns.</summary>
    private sealed class NoOpOps : IIntervalNotifierOps
    {
        public long Invocations;

        public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
        {
            Invocations++;
            notifier.SetSeq(curSeq);
            return true;
        }
    }
}
