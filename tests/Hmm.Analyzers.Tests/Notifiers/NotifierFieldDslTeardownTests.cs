using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Notifiers;

/// <summary>
/// HMM1035 teardown in DSL drivers: the generated <c>Detach</c> carries <c>[RemovesNotifier]</c> and the
/// generated <c>Attach</c> <c>[InsertsNotifier]</c>, so a field the user's <c>[OnInvalidate]</c> reads
/// (itself or through helpers) torn down before the detach, outside U, is reported; after the
/// detach (directly or two helpers deep), or under U (the lock the generated invalidate holds while
/// it calls the user's callback), it is not. The generated members are stood in for here, with the
/// contracts the generator emits (the analyzer tests do not run the generator).
/// </summary>
public sealed class NotifierFieldDslTeardownTests
{
    private const string Driver = """
        sealed class DeviceState : IDisposable
        {
            public void Dispose() { }
            public void Touch() { }
        }

        [HmmDriver("g", UpdateLock = nameof(_update))]
        public partial class G
        {
            private readonly KernelMutex _update = new("g.update");
            private long[]? _hits = new long[4];
            private DeviceState? _state = new();
            [OnInvalidate]
            void Zap(in NotifierRange range) => Count(range);
            private void Count(in NotifierRange range) => Bump();
            private void Bump() { _hits![0]++; _state!.Touch(); }

        """;

    private const string Attaching = """
            public G(SimDevice device, Process process) => Attach(device, process);

        """;

    private const string Generated = """
        }

        public partial class G
        {
            [System.CodeDom.Compiler.GeneratedCode("Hmm.Generators", "1.0")]
            [InsertsNotifier]
            public Errno Attach(SimDevice device, Process process) => Errno.Ok;

            [System.CodeDom.Compiler.GeneratedCode("Hmm.Generators", "1.0")]
            [RemovesNotifier]
            public void Detach() { }
        }
        """;

    private static Task Verify(string members) => HmmVerifier.VerifyAsync(Driver + Attaching + members + Generated);

    // ---- fire ---------------------------------------------------------------------------------------

    [Test]
    public Task Field_nulled_before_detach_fires() => Verify("""
            public void Close()
            {
                {|HMM1035:_hits = null|};
                Detach();
            }

        """);

    [Test]
    public Task Teardown_two_helpers_deep_before_detach_fires() => Verify("""
            public void Close()
            {
                {|HMM1035:Drop()|};
                Detach();
            }
            private void Drop() => Clear();
            private void Clear() => _hits = null;

        """);

    [Test]
    public Task Dispose_without_any_detach_fires() => Verify("""
            public void Reset() => {|HMM1035:_state!.Dispose()|};

        """);

    [Test]
    public Task Teardown_in_a_finally_reached_past_the_detach_fires() => Verify("""
            public void Close(bool busy)
            {
                try
                {
                    if (busy) return;
                    Detach();
                }
                finally { {|HMM1035:_state = null|}; }
            }

        """);

    // ---- silent -------------------------------------------------------------------------------------

    [Test]
    public Task Teardown_after_detach_is_silent() => Verify("""
            public void Close()
            {
                Detach();
                _hits = null;
                _state!.Dispose();
            }

        """);

    [Test]
    public Task Teardown_after_a_detach_two_helpers_deep_is_silent() => Verify("""
            public void Close()
            {
                Stop();
                _hits = null;
            }
            private void Stop() => Halt();
            private void Halt() => Detach();

        """);

    [Test]
    public Task Teardown_under_the_update_lock_is_silent() => Verify("""
            public void Shrink()
            {
                _update.Lock();
                try { _hits = null; }
                finally { _update.Unlock(); }
            }

        """);

    [Test]
    public Task Field_the_callback_does_not_read_is_silent() => Verify("""
            private DeviceState? _log = new();
            public void Close()
            {
                _log!.Dispose();
                Detach();
            }

        """);

    [Test]
    public Task Driver_never_attached_is_silent() => HmmVerifier.VerifyAsync(Driver + """
            public void Close()
            {
                _hits = null;
                Detach();
            }
        """ + Generated);
}
