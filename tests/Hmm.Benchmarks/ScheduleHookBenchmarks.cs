using BenchmarkDotNet.Attributes;
using Hmm.Runtime.Locking;

namespace Hmm.Benchmarks;

/// <summary>
/// Issue 12, target 4: the scheduling hooks cost nothing when no exploration runs. The hottest
/// hooked path is an uncontended lock/unlock pair (two hook checks per pair). The baseline is a
/// verbatim copy of main's (pre-issue-12) KernelMutex fast path, so both sides run in one
/// BenchmarkDotNet run against the same held-lock stack; the ratio is the hook's cost.
/// </summary>
[MemoryDiagnoser]
public class ScheduleHookBenchmarks
{
    private const int Pairs = 1000;
    private readonly KernelMutex _hooked = new("bench.hooked");
    private readonly UnhookedMutex _unhooked = new("bench.unhooked");
    private readonly Hmm.Runtime.Locking.SpinLock _spin = new("bench.spin");

    /// <summary>Lock validation off, as in every benchmark: the validator's own cost would hide the hook's.</summary>
    [GlobalSetup]
    public void GlobalSetup() => LockValidator.Enabled = false;

    /// <summary>Main's mutex fast path, without scheduling points.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs)]
    public void MutexWithoutHooks()
    {
        for (int i = 0; i < Pairs; i++)
        {
            _unhooked.Lock();
            _unhooked.Unlock();
        }
    }

    /// <summary>The runtime's mutex: an Acquire point before the compare-exchange, a Released point after the unlock.</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void MutexWithHooks()
    {
        for (int i = 0; i < Pairs; i++)
        {
            _hooked.Lock();
            _hooked.Unlock();
        }
    }

    /// <summary>The runtime's spinlock with its two hook checks.</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void SpinLockWithHooks()
    {
        for (int i = 0; i < Pairs; i++)
        {
            _spin.Lock();
            _spin.Unlock();
        }
    }

    /// <summary>Main's KernelMutex fast path (lock validation off), copied before the hooks were added.</summary>
    private sealed class UnhookedMutex(string className)
    {
        private readonly object _gate = new();
        private int _owner;
        private int _sleepers;

        public void Lock()
        {
            HeldLocks held = HeldLocks.Current;
            if (LockValidator.Enabled)
            {
                LockValidator.MightSleep("unhooked");
            }

            int me = Environment.CurrentManagedThreadId;
            if (Interlocked.CompareExchange(ref _owner, me, 0) != 0)
            {
                Interlocked.Increment(ref _sleepers);   // main's slow path would sleep here; never reached
                throw new InvalidOperationException("uncontended benchmark");
            }

            held.Push(this, className, 0, LockKind.Mutex);
        }

        public void Unlock()
        {
            int me = Environment.CurrentManagedThreadId;
            if (Volatile.Read(ref _owner) != me)
            {
                throw new InvalidOperationException("not the owner");
            }

            HeldLocks.Current.Remove(this, LockKind.Mutex);
            Interlocked.Exchange(ref _owner, 0);
            if (Volatile.Read(ref _sleepers) != 0)
            {
                lock (_gate)
                {
                    Monitor.Pulse(_gate);
                }
            }
        }
    }
}
