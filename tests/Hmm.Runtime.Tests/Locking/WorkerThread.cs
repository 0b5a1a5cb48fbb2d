using NUnit.Framework;
using System.Runtime.ExceptionServices;

namespace Hmm.Runtime.Tests.Locking;

/// <summary>A real thread whose exception is carried back to the test thread on <see cref="Join"/>.</summary>
internal sealed class WorkerThread
{
    private static readonly TimeSpan JoinTimeout = TimeSpan.FromSeconds(30);

    private readonly Thread _thread;
    private Exception? _error;

    private WorkerThread(string name, Action body)
    {
        _thread = new Thread(() =>
        {
            try
            {
                body();
            }
            catch (Exception e)
            {
                _error = e;
            }
        })
        {
            Name = name,
            IsBackground = true,
        };
    }

    public bool IsAlive => _thread.IsAlive;

    public static WorkerThread Start(string name, Action body)
    {
        var w = new WorkerThread(name, body);
        w._thread.Start();
        return w;
    }

    /// <summary>Runs <paramref name="body"/> on a new thread and waits for it; rethrows its exception.</summary>
    public static void Run(string name, Action body) => Start(name, body).Join();

    /// <summary>Waits for the thread (failing the test if it hangs) and rethrows what it threw.</summary>
    public void Join()
    {
        Assert.That(_thread.Join(JoinTimeout), Is.True, $"thread '{_thread.Name}' did not finish");
        if (_error is not null)
        {
            ExceptionDispatchInfo.Capture(_error).Throw();
        }
    }

    /// <summary>Waits until <paramref name="condition"/> holds (observing another thread's progress, not a timing assumption).</summary>
    public static void WaitUntil(Func<bool> condition, string what)
    {
        Assert.That(SpinWait.SpinUntil(condition, JoinTimeout), Is.True, $"timed out waiting until {what}");
    }
}
