using Hmm.Runtime.Locking;

namespace Hmm.Runtime.Scheduling;

/// <summary>
/// Real threads reused across schedules: creating and joining threads per schedule cost more
/// than running the schedule. A worker forgets its held-lock stack before each logical thread
/// (an aborted schedule may have unwound without releasing).
/// </summary>
internal static class ExplorationWorkers
{
    private static readonly Stack<Worker> s_idle = new();
    private static readonly object s_gate = new();

    public static void Run(Action work)
    {
        Worker? worker;
        lock (s_gate)
        {
            s_idle.TryPop(out worker);
        }

        worker ??= new Worker();
        worker.Start(work);
    }

    private sealed class Worker
    {
        private readonly SemaphoreSlim _go = new(0, 1);
        private Action? _work;

        public Worker()
        {
            var thread = new Thread(Loop, maxStackSize: 1 << 20) { IsBackground = true, Name = "hmm-explore-worker" };
            thread.Start();
        }

        public void Start(Action work)
        {
            _work = work;
            _go.Release();
        }

        private void Loop()
        {
            while (true)
            {
                _go.Wait();
                HeldLocks.DiscardCurrent();
                Action work = _work!;
                _work = null;
                work();
                lock (s_gate)
                {
                    s_idle.Push(this);
                }
            }
        }
    }
}
