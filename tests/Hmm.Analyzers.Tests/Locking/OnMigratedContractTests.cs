using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Locking;

/// <summary>
/// The generated migration step calls a DSL driver's <c>[OnMigrated]</c> callback with the update
/// lock U held. The analyzer derives that contract from the attribute and the driver's
/// <c>[HmmDriver(UpdateLock = ...)]</c> — <c>Requires(U)</c> — without the driver restating it: the
/// callback may touch <c>[GuardedBy(U)]</c> state, must not take U again (HMM1006 self-deadlock),
/// must not ReadBegin or fault (HMM1011, also two helpers deep), and a user call to it without U
/// is HMM1002.
/// </summary>
public sealed class OnMigratedContractTests
{
    private const string Dsl = """
        [HmmDriver("d", UpdateLock = nameof(_update))]
        partial class G
        {
            private readonly KernelMutex _update = new("u");
            private readonly KernelMutex _stats = new("stats");
            [GuardedBy(nameof(_update))] private long _mapped;
            private IntervalNotifier _n = null!;
            private HmmRange _range = null!;

        """;

    private static Task Verify(string members) => HmmVerifier.VerifyAsync(Dsl + members + "}\n");

    // ---- fire ---------------------------------------------------------------------------------------

    [Test]
    public Task Taking_U_again_in_OnMigrated_fires() => Verify("""
            [OnMigrated]
            void Mapped(MigrateVma args)
            {
                {|HMM1006:_update.Lock()|};
                _update.Unlock();
            }

        """);

    [Test]
    public Task Taking_U_again_two_helpers_deep_from_OnMigrated_fires() => Verify("""
            [OnMigrated]
            void Mapped(MigrateVma args) => {|HMM1006:Count(args)|};
            private void Count(MigrateVma args) => Add(args.EntryCount);
            private void Add(long n)
            {
                _update.Lock();
                try { _mapped += n; }
                finally { _update.Unlock(); }
            }

        """);

    [Test]
    public Task ReadBegin_in_OnMigrated_fires() => Verify("""
            [OnMigrated]
            void Mapped(MigrateVma args) => _range.NotifierSeq = {|HMM1011:_n.ReadBegin()|};

        """);

    [Test]
    public Task ReadBegin_two_helpers_deep_from_OnMigrated_fires() => Verify("""
            [OnMigrated]
            void Mapped(MigrateVma args) => {|HMM1011:Refresh()|};
            private void Refresh() => Restart();
            private void Restart() => _range.NotifierSeq = _n.ReadBegin();

        """);

    [Test]
    public Task Calling_the_OnMigrated_callback_without_U_fires() => Verify("""
            [OnMigrated]
            void Mapped(MigrateVma args) => _mapped += args.EntryCount;
            public void Replay(MigrateVma args) => {|HMM1002:Mapped(args)|};

        """);

    [Test]
    public Task Generated_U_of_a_driver_naming_none_is_required_too() => HmmVerifier.VerifyAsync("""
        [HmmDriver("n")]
        partial class N
        {
            private long _pages;
            [OnMigrated]
            void Mapped(MigrateVma args) => {|HMM1003:Prefault(args.End)|};
            public void Run(MigrateVma args) => {|HMM1002:Mapped(args)|};
        }

        partial class N
        {
            // Stand-in for the generated part: U, and an entry point excluding it.
            [System.CodeDom.Compiler.GeneratedCode("Hmm.Generators", "1.0")]
            private readonly KernelMutex __hmmUpdateLock = new("n.update");
            [System.CodeDom.Compiler.GeneratedCode("Hmm.Generators", "1.0")]
            [Excludes("__hmmUpdateLock")]
            public Errno Prefault(ulong start) { _pages++; return Errno.Ok; }
        }
        """);

    // ---- silent -------------------------------------------------------------------------------------

    [Test]
    public Task Guarded_field_in_OnMigrated_is_silent() => Verify("""
            [OnMigrated]
            void Mapped(MigrateVma args) => _mapped += args.EntryCount;

        """);

    [Test]
    public Task Helper_requiring_U_two_deep_from_OnMigrated_is_silent() => Verify("""
            [OnMigrated]
            void Mapped(MigrateVma args) => Count(args);
            private void Count(MigrateVma args) => Add(args.EntryCount);
            [Requires(nameof(_update))]
            private void Add(long n) => _mapped += n;

        """);

    [Test]
    public Task Another_lock_taken_in_OnMigrated_is_silent() => Verify("""
            private long _calls;
            [OnMigrated]
            void Mapped(MigrateVma args)
            {
                _stats.Lock();
                try { _calls++; }
                finally { _stats.Unlock(); }
            }

        """);

    [Test]
    public Task Same_shape_without_the_attribute_may_take_U_and_read_begin() => Verify("""
            public void Mapped(MigrateVma args)
            {
                _range.NotifierSeq = _n.ReadBegin();
                _update.Lock();
                try { _mapped += args.EntryCount; }
                finally { _update.Unlock(); }
            }

        """);

    [Test]
    public Task Calling_the_OnMigrated_callback_under_U_is_silent() => Verify("""
            [OnMigrated]
            void Mapped(MigrateVma args) => _mapped += args.EntryCount;
            public void Replay(MigrateVma args)
            {
                _update.Lock();
                try { Mapped(args); }
                finally { _update.Unlock(); }
            }

        """);
}
