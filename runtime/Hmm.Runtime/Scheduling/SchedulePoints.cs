using System.Runtime.CompilerServices;

namespace Hmm.Runtime.Scheduling;

/// <summary>What a logical thread was doing when it reached a scheduling point.</summary>
public enum SchedulePointKind : byte
{
    /// <summary>About to take a lock (mutex_lock, spin_lock, down_read/down_write, a trylock).</summary>
    Acquire,
    /// <summary>Released a lock or woke a wait queue: blocked threads may run again.</summary>
    Release,
    /// <summary>Could not get a lock or its wait condition is false: sleeps until a release.</summary>
    Block,
    /// <summary>A CPU load or store of the simulated process.</summary>
    CpuAccess,
    /// <summary>One step of a device engine (an executor op, a copy-engine batch, a fault-buffer write).</summary>
    DeviceStep,
    /// <summary>An MMU-notifier callback is about to run.</summary>
    Notifier,
    /// <summary>A point where the kernel may sleep or be preempted (might_sleep, cond_resched).</summary>
    MaySleep,
    /// <summary>
    /// A retry that made no progress (a CPU fault finding the same entry again): the thread can
    /// only go on once another thread moves, so the scheduler lowers it below every other thread
    /// (Coyote's Yield; under PCT a spinning high-priority thread would otherwise starve the holder).
    /// </summary>
    Yield,
}

/// <summary>
/// Receives the scheduling points of the runtime while a systematic exploration runs
/// (the controlled scheduler of <see cref="Explorer"/>). Implementations are called on the
/// logical thread that reached the point and may park it there.
/// </summary>
public interface IScheduleHook
{
    /// <summary>A preemption point: the scheduler may run another logical thread first.</summary>
    void Reach(SchedulePointKind kind, object? subject, ulong detail);

    /// <summary>
    /// The calling thread cannot proceed until <paramref name="subject"/> is released: park it
    /// (a real sleep would stall the one thread allowed to run). The caller re-checks its
    /// condition when this returns.
    /// </summary>
    void Block(object subject);

    /// <summary><paramref name="subject"/> was released or its wait queue woken.</summary>
    void Released(object subject);
}

/// <summary>
/// The single static hook of the runtime's scheduling points. Outside an exploration
/// <see cref="Hook"/> is null and every point costs one static load and one predictable
/// branch; <see cref="Explorer"/> installs its scheduler for the duration of a run.
/// </summary>
public static class SchedulePoints
{
    /// <summary>The controlled scheduler, or null when nothing explores (the normal case).</summary>
    public static IScheduleHook? Hook { get; internal set; }

    /// <summary>A preemption point; no-op unless an exploration runs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Reach(SchedulePointKind kind, object? subject, ulong detail = 0)
    {
        IScheduleHook? hook = Hook;
        if (hook is not null)
        {
            hook.Reach(kind, subject, detail);
        }
    }

    /// <summary>
    /// A no-progress retry point: the caller found the same state it failed on last time and can
    /// only succeed after another thread runs. A preemption point that also lowers the caller's
    /// priority under exploration; no-op otherwise.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Yield(object? subject, ulong detail = 0)
    {
        IScheduleHook? hook = Hook;
        if (hook is not null)
        {
            hook.Reach(SchedulePointKind.Yield, subject, detail);
        }
    }

    /// <summary>Tells the scheduler that <paramref name="subject"/> was released; no-op unless an exploration runs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Released(object subject)
    {
        IScheduleHook? hook = Hook;
        if (hook is not null)
        {
            hook.Released(subject);
        }
    }
}
