using System.Runtime.ExceptionServices;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Notifiers;

/// <summary>
/// Runs one call on a background thread so a test can assert it blocks and later completes,
/// with bounded waits: a bug fails the test instead of hanging the run.
/// </summary>
internal sealed class TestThread
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);
    private readonly ManualResetEventSlim _done = new();
    private Exception? _error;

    private TestThread() { }

    /// <summary>Starts <paramref name="action"/> on a new background thread.</summary>
    public static TestThread Start(Action action)
    {
        var t = new TestThread();
        var thread = new Thread(() =>
        {
            try { action(); }
            catch (Exception e) { t._error = e; }
            finally { t._done.Set(); }
        }) { IsBackground = true, Name = "notifier-test" };
        thread.Start();
        return t;
    }

    /// <summary>Whether the call returned (or threw).</summary>
    public bool Finished => _done.IsSet;

    /// <summary>Asserts the call is still blocked after <paramref name="milliseconds"/>.</summary>
    public void AssertBlocked(int milliseconds = 150)
        => Assert.That(_done.Wait(milliseconds), Is.False, "the call returned but should still be blocked");

    /// <summary>Asserts the call returns within the bound, rethrowing what it threw.</summary>
    public void AssertCompletes()
    {
        Assert.That(_done.Wait(Bound), Is.True, "the call did not return within the bound");
        if (_error is not null) ExceptionDispatchInfo.Capture(_error).Throw();
    }
}
