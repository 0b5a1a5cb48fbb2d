using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Notifiers;

/// <summary>
/// HMM1035 in DSL drivers: the notifier is inserted by the generated <c>Attach</c>, so user code that
/// calls it and then assigns a field the <c>[OnInvalidate]</c>/<c>[OnRelease]</c> callbacks read lets
/// an invalidation see it unset. The generated member is stood in for here (the analyzer tests do
/// not run the generator): an <c>Attach</c> carrying the generator's <c>[InsertsNotifier]</c> contract on the driver class.
/// </summary>
public sealed class NotifierFieldDslTests
{
    private const string Driver = """
        [HmmDriver("g", UpdateLock = nameof(_update))]
        public partial class G
        {
            private readonly KernelMutex _update = new("g.update");
            private long[] _hits;
            private bool _draining;
            private bool _released;
            [OnInvalidate]
            void Zap(in NotifierRange range) => Count(range);
            [OnRelease]
            void Release() => _released = !_draining;
            private void Count(in NotifierRange range) => Bump();
            private void Bump() => _hits[0]++;

        """;

    private const string Generated = """
        }

        public partial class G
        {
            [System.CodeDom.Compiler.GeneratedCode("Hmm.Generators", "1.0")]
            [InsertsNotifier]
            public Errno Attach(SimDevice device, Process process) => Errno.Ok;
        }
        """;

    private static Task Verify(string members) => HmmVerifier.VerifyAsync(Driver + members + Generated);

    [Test]
    public Task Counter_array_assigned_after_attach_fires() => Verify("""
            public G(SimDevice device, Process process)
            {
                if (Attach(device, process) != Errno.Ok) throw new InvalidOperationException();
                {|HMM1035:_hits = new long[4]|};
            }

        """);

    [Test]
    public Task Store_two_helpers_deep_after_attach_fires() => Verify("""
            public G(SimDevice device, Process process)
            {
                Attach(device, process);
                {|HMM1035:Setup()|};
            }
            private void Setup() => Allocate();
            private void Allocate() => _hits = new long[4];

        """);

    [Test]
    public Task Attach_two_helpers_deep_then_a_release_field_fires() => Verify("""
            public G(SimDevice device, Process process)
            {
                _hits = new long[4];
                Start(device, process);
                {|HMM1035:_draining = false|};
            }
            private void Start(SimDevice device, Process process) => Bind(device, process);
            private void Bind(SimDevice device, Process process) => Attach(device, process);

        """);

    [Test]
    public Task Everything_assigned_before_attach_is_silent() => Verify("""
            private int _mode;
            public G(SimDevice device, Process process)
            {
                _hits = new long[4];
                _draining = false;
                Attach(device, process);
                _mode = 1;
            }

        """);

    [Test]
    public Task Attach_in_a_later_method_with_state_from_construction_is_silent() => Verify("""
            public G() { _hits = new long[4]; }
            public Errno Start(SimDevice device, Process process)
            {
                var e = Attach(device, process);
                _hits = new long[8];
                return e;
            }

        """);

    [Test]
    public Task Field_with_an_initializer_is_silent() => HmmVerifier.VerifyAsync("""
        [HmmDriver("g", UpdateLock = nameof(_update))]
        public partial class G
        {
            private readonly KernelMutex _update = new("g.update");
            private long[] _hits = new long[4];
            [OnInvalidate]
            void Zap(in NotifierRange range) => _hits[0]++;
            public G(SimDevice device, Process process)
            {
                Attach(device, process);
                _hits = new long[8];
            }
        """ + Generated);

    [Test]
    public Task User_method_named_attach_without_the_contract_is_not_an_insert() => HmmVerifier.VerifyAsync(Driver + """
            public G(SimDevice device, Process process)
            {
                Attach(device, process);
                _hits = new long[4];
            }
            public Errno Attach(SimDevice device, Process process) => Errno.Ok;
        }
        """);
}
