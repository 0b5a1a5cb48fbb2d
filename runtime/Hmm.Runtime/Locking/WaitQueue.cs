namespace Hmm.Runtime.Locking;

/// <summary>
/// Simulates <c>wait_queue_head_t</c> with wait_event / wake_up_all. (Stub — replaced by the Locking work.)
/// </summary>
public sealed class WaitQueue
{
    private readonly object _gate = new();

    /// <summary>Creates a wait queue named <paramref name="name"/>.</summary>
    public WaitQueue(string name) => Name = name;

    /// <summary>The queue's name.</summary>
    public string Name { get; }

    /// <summary>wait_event: sleeps until <paramref name="condition"/>(<paramref name="state"/>) is true. May sleep.</summary>
    public void WaitEvent<TState>(TState state, Func<TState, bool> condition)
    {
        LockValidator.MightSleep("wait_event(" + Name + ")");
        lock (_gate)
        {
            while (!condition(state)) Monitor.Wait(_gate, 10);
        }
    }

    /// <summary>wake_up_all.</summary>
    public void WakeUpAll()
    {
        lock (_gate) Monitor.PulseAll(_gate);
    }
}
