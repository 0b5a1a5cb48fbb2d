using Hmm.Analyzers.CodeFixes.Flow;
using Hmm.Analyzers.CodeFixes.Notifiers;
using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.CodeFixes;

/// <summary>
/// Code fixes for the whole-mm mmu_notifier rules HMM1050–HMM1053: before/after text, the result
/// compiles and its diagnostic is gone; every shape where the repair is not local and unique is
/// shown to get no fix.
/// </summary>
public sealed class MmuNotifierFixTests
{
    private const string Ops = """
        sealed class Ops : MmuNotifierOps
        {
            public override Errno AllocNotifier(AddressSpace mm, out MmuNotifier? subscription)
            {
                subscription = new MmuNotifier(this);
                return Errno.Ok;
            }
        }

        """;

    // A driver with a correct unload path, so only the rule under test can fire.
    private const string Head = Ops + """
        sealed class Drv : IDisposable
        {
            private static readonly Ops s_ops = new();
            private readonly Machine _machine = null!;
            public void Dispose() => MmuNotifier.Synchronize(_machine);
            private static void Work(MmuNotifier n) { }
            private static void Log(AddressSpace? mm) { }

        """;

    // ---- HMM1050: the put moves into a finally ----------------------------------------------------

    [Test]
    public Task Hmm1050_put_after_an_early_return_moves_into_finally() => HmmFixVerifier<ReleaseInFinallyFixer>.VerifyAsync(compilationEnd: true, before: Head + """
            public Errno Bind(AddressSpace mm, bool busy)
            {
                if ({|HMM1050:MmuNotifier.Get(s_ops, mm, out var n)|} != Errno.Ok) return Errno.ENOMEM;
                if (busy) return Errno.EBUSY;
                Work(n!);
                n!.Put();
                return Errno.Ok;
            }
        }
        """, after: Head + """
            public Errno Bind(AddressSpace mm, bool busy)
            {
                if (MmuNotifier.Get(s_ops, mm, out var n) != Errno.Ok) return Errno.ENOMEM;
                try
                {
                    if (busy) return Errno.EBUSY;
                    Work(n!);
                }
                finally
                {
                    n!.Put();
                }

                return Errno.Ok;
            }
        }
        """);

    [Test]
    public Task Hmm1050_early_put_copy_goes_when_the_finally_takes_over() => HmmFixVerifier<ReleaseInFinallyFixer>.VerifyAsync(compilationEnd: true, before: Head + """
            public Errno Bind(AddressSpace mm, bool busy, bool slow)
            {
                if ({|HMM1050:MmuNotifier.Get(s_ops, mm, out var n)|} != Errno.Ok) return Errno.ENOMEM;
                if (busy)
                {
                    n!.Put();
                    return Errno.EBUSY;
                }
                if (slow) return Errno.EAGAIN;
                n!.Put();
                return Errno.Ok;
            }
        }
        """, after: Head + """
            public Errno Bind(AddressSpace mm, bool busy, bool slow)
            {
                if (MmuNotifier.Get(s_ops, mm, out var n) != Errno.Ok) return Errno.ENOMEM;
                try
                {
                    if (busy)
                    {
                        return Errno.EBUSY;
                    }
                    if (slow) return Errno.EAGAIN;
                }
                finally
                {
                    n!.Put();
                }

                return Errno.Ok;
            }
        }
        """);

    [Test]
    public Task Hmm1050_put_only_on_one_branch_gets_no_fix() => HmmFixVerifier<ReleaseInFinallyFixer>.VerifyNoFixAsync(Head + """
            public void Touch(AddressSpace mm, bool done)
            {
                if ({|HMM1050:MmuNotifier.Get(s_ops, mm, out var n)|} != Errno.Ok) return;
                if (done) n!.Put();
            }
        }
        """);

    [Test]
    public Task Hmm1050_never_put_gets_no_fix() => HmmFixVerifier<ReleaseInFinallyFixer>.VerifyNoFixAsync(Head + """
            public void Touch(AddressSpace mm)
            {
                if ({|HMM1050:MmuNotifier.Get(s_ops, mm, out var n)|} != Errno.Ok) return;
                Work(n!);
            }
        }
        """);

    // ---- HMM1051: the put moves after the last use -------------------------------------------------

    [Test]
    public Task Hmm1051_put_moves_after_the_statement_using_it() => HmmFixVerifier<PutAfterUseFixer>.VerifyAsync(compilationEnd: true, before: Head + """
            public void Unbind(MmuNotifier n)
            {
                n.Put();
                Log({|HMM1051:n.Mm|});
                Log(null);
            }
        }
        """, after: Head + """
            public void Unbind(MmuNotifier n)
            {
                Log(n.Mm);
                n.Put();
                Log(null);
            }
        }
        """);

    [Test]
    public Task Hmm1051_returned_value_is_read_before_the_put() => HmmFixVerifier<PutAfterUseFixer>.VerifyAsync(compilationEnd: true, before: Head + """
            public AddressSpace? Unbind(MmuNotifier n)
            {
                n.Put();
                return {|HMM1051:n.Mm|};
            }
        }
        """, after: Head + """
            public AddressSpace? Unbind(MmuNotifier n)
            {
                var result = n.Mm;
                n.Put();
                return result;
            }
        }
        """);

    [Test]
    public Task Hmm1051_field_put_moves_past_every_later_use() => HmmFixVerifier<PutAfterUseFixer>.VerifyAsync(compilationEnd: true, before: Head + """
            private MmuNotifier _kept = null!;
            public void Unbind()
            {
                _kept.Put();
                {|HMM1051:Work(_kept)|};
                Log({|HMM1051:_kept.Mm|});
            }
        }
        """, after: Head + """
            private MmuNotifier _kept = null!;
            public void Unbind()
            {
                Work(_kept);
                Log(_kept.Mm);
                _kept.Put();
            }
        }
        """);

    [Test]
    public Task Hmm1051_second_put_gets_no_fix() => HmmFixVerifier<PutAfterUseFixer>.VerifyNoFixAsync(Head + """
            public void Unbind(MmuNotifier n, bool early)
            {
                if (early) n.Put();
                {|HMM1051:n.Put()|};
            }
        }
        """);

    [Test]
    public Task Hmm1051_early_exit_between_put_and_use_gets_no_fix() => HmmFixVerifier<PutAfterUseFixer>.VerifyNoFixAsync(Head + """
            public void Unbind(MmuNotifier n, bool quick)
            {
                n.Put();
                if (quick) return;
                Log({|HMM1051:n.Mm|});
            }
        }
        """);

    [Test]
    public Task Hmm1051_put_by_a_helper_gets_no_fix() => HmmFixVerifier<PutAfterUseFixer>.VerifyNoFixAsync(Head + """
            public int Unbind(MmuNotifier n)
            {
                Drop(n);
                return {|HMM1051:n.Users|};
            }
            private static void Drop(MmuNotifier n) => n.Put();
        }
        """);

    // ---- HMM1052: Synchronize on the unload path -----------------------------------------------------

    [Test]
    public Task Hmm1052_synchronize_ends_the_dispose_block() => HmmFixVerifier<SynchronizeOnUnloadFixer>.VerifyAsync(compilationEnd: true, before: Ops + """
        sealed class Bind : IDisposable
        {
            private static readonly Ops s_ops = new();
            private readonly Machine _machine = null!;
            private MmuNotifier? _n;
            public void Open(AddressSpace mm)
            {
                if ({|HMM1052:MmuNotifier.Get(s_ops, mm, out var n)|} == Errno.Ok) _n = n;
            }
            public void Dispose()
            {
                _n?.Put();
            }
        }
        """, after: Ops + """
        sealed class Bind : IDisposable
        {
            private static readonly Ops s_ops = new();
            private readonly Machine _machine = null!;
            private MmuNotifier? _n;
            public void Open(AddressSpace mm)
            {
                if (MmuNotifier.Get(s_ops, mm, out var n) == Errno.Ok) _n = n;
            }
            public void Dispose()
            {
                _n?.Put();
                MmuNotifier.Synchronize(_machine);
            }
        }
        """);

    [Test]
    public Task Hmm1052_expression_bodied_dispose_becomes_a_block() => HmmFixVerifier<SynchronizeOnUnloadFixer>.VerifyAsync(compilationEnd: true, before: Ops + """
        sealed class Bind : IDisposable
        {
            private static readonly Ops s_ops = new();
            private MmuNotifier? _n;
            public Machine Host { get; } = null!;
            public void Open(AddressSpace mm)
            {
                if ({|HMM1052:MmuNotifier.Get(s_ops, mm, out var n)|} == Errno.Ok) _n = n;
            }
            public void Dispose() => _n?.Put();
        }
        """, after: Ops + """
        sealed class Bind : IDisposable
        {
            private static readonly Ops s_ops = new();
            private MmuNotifier? _n;
            public Machine Host { get; } = null!;
            public void Open(AddressSpace mm)
            {
                if (MmuNotifier.Get(s_ops, mm, out var n) == Errno.Ok) _n = n;
            }
            public void Dispose()
            {
                _n?.Put();
                MmuNotifier.Synchronize(Host);
            }
        }
        """);

    [Test]
    public Task Hmm1052_module_exit_two_helpers_deep_takes_its_machine_parameter() => HmmFixVerifier<SynchronizeOnUnloadFixer>.VerifyAsync(compilationEnd: true, before: Ops + """
        sealed class Module
        {
            private static readonly Ops s_ops = new();
            private MmuNotifier? _n;
            public void Open(AddressSpace mm) => {|HMM1052:Attach(mm)|};
            private void Attach(AddressSpace mm) => Take(mm);
            private void Take(AddressSpace mm)
            {
                if (MmuNotifier.Get(s_ops, mm, out var n) == Errno.Ok) _n = n;
            }
            [ModuleExit]
            public void Exit(Machine machine)
            {
                _n?.Put();
            }
        }
        """, after: Ops + """
        sealed class Module
        {
            private static readonly Ops s_ops = new();
            private MmuNotifier? _n;
            public void Open(AddressSpace mm) => Attach(mm);
            private void Attach(AddressSpace mm) => Take(mm);
            private void Take(AddressSpace mm)
            {
                if (MmuNotifier.Get(s_ops, mm, out var n) == Errno.Ok) _n = n;
            }
            [ModuleExit]
            public void Exit(Machine machine)
            {
                _n?.Put();
                MmuNotifier.Synchronize(machine);
            }
        }
        """);

    [Test]
    public Task Hmm1052_no_unload_path_gets_no_fix() => HmmFixVerifier<SynchronizeOnUnloadFixer>.VerifyNoFixAsync(Ops + """
        sealed class Bind
        {
            private static readonly Ops s_ops = new();
            private readonly Machine _machine = null!;
            public MmuNotifier? Open(AddressSpace mm)
                => {|HMM1052:MmuNotifier.Get(s_ops, mm, out var n)|} == Errno.Ok ? n : null;
        }
        """);

    [Test]
    public Task Hmm1052_two_machines_get_no_fix() => HmmFixVerifier<SynchronizeOnUnloadFixer>.VerifyNoFixAsync(Ops + """
        sealed class Bind : IDisposable
        {
            private static readonly Ops s_ops = new();
            private readonly Machine _host = null!, _guest = null!;
            private MmuNotifier? _n;
            public void Open(AddressSpace mm)
            {
                if ({|HMM1052:MmuNotifier.Get(s_ops, mm, out var n)|} == Errno.Ok) _n = n;
            }
            public void Dispose() => _n?.Put();
        }
        """);

    [Test]
    public Task Hmm1052_no_machine_in_reach_gets_no_fix() => HmmFixVerifier<SynchronizeOnUnloadFixer>.VerifyNoFixAsync(Ops + """
        sealed class Bind : IDisposable
        {
            private static readonly Ops s_ops = new();
            private MmuNotifier? _n;
            public void Open(AddressSpace mm)
            {
                if ({|HMM1052:MmuNotifier.Get(s_ops, mm, out var n)|} == Errno.Ok) _n = n;
            }
            public void Dispose() => _n?.Put();
        }
        """);

    // ---- HMM1053: the cleanup moves into FreeNotifier ------------------------------------------------

    private const string State = """
        sealed class DeviceState : IDisposable
        {
            public void Dispose() { }
        }

        """;

    private const string Alloc = """
            public override Errno AllocNotifier(AddressSpace mm, out MmuNotifier? subscription)
            {
                subscription = new MmuNotifier(this);
                return Errno.Ok;
            }

        """;

    [Test]
    public Task Hmm1053_cleanup_moves_into_a_new_free_notifier() => HmmFixVerifier<CleanupToFreeNotifierFixer>.VerifyAsync(compilationEnd: true, before: State + """
        sealed class Svm : MmuNotifierOps
        {
            private readonly DeviceState _state = new();
            public volatile bool Dead;

        """ + Alloc + """
            public override void Release(MmuNotifier subscription, AddressSpace mm)
            {
                Dead = true;
                {|HMM1053:_state.Dispose()|};
            }
        }
        """, after: State + """
        sealed class Svm : MmuNotifierOps
        {
            private readonly DeviceState _state = new();
            public volatile bool Dead;

        """ + Alloc + """
            public override void Release(MmuNotifier subscription, AddressSpace mm)
            {
                Dead = true;
            }
            public override void FreeNotifier(MmuNotifier subscription)
            {
                _state.Dispose();
            }
        }
        """);

    [Test]
    public Task Hmm1053_cleanup_joins_an_existing_free_notifier() => HmmFixVerifier<CleanupToFreeNotifierFixer>.VerifyAsync(compilationEnd: true, before: State + """
        sealed class Svm : MmuNotifierOps
        {
            private readonly DeviceState _state = new();
            public int Frees;

        """ + Alloc + """
            public override void Release(MmuNotifier subscription, AddressSpace mm) => {|HMM1053:_state.Dispose()|};
            public override void FreeNotifier(MmuNotifier subscription) => Frees++;
        }
        """, after: State + """
        sealed class Svm : MmuNotifierOps
        {
            private readonly DeviceState _state = new();
            public int Frees;

        """ + Alloc + """
            public override void Release(MmuNotifier subscription, AddressSpace mm)
            {
            }
            public override void FreeNotifier(MmuNotifier subscription)
            {
                Frees++;
                _state.Dispose();
            }
        }
        """);

    [Test]
    public Task Hmm1053_released_reference_of_another_kind_moves() => HmmFixVerifier<CleanupToFreeNotifierFixer>.VerifyAsync(compilationEnd: true, before: """
        sealed class Svm : MmuNotifierOps
        {
            private readonly AddressSpace _owner = null!;

        """ + Alloc + """
            public override void Release(MmuNotifier subscription, AddressSpace mm)
            {
                {|HMM1053:_owner.PutDeferred()|};
            }
        }
        """, after: """
        sealed class Svm : MmuNotifierOps
        {
            private readonly AddressSpace _owner = null!;

        """ + Alloc + """
            public override void Release(MmuNotifier subscription, AddressSpace mm)
            {
            }
            public override void FreeNotifier(MmuNotifier subscription)
            {
                _owner.PutDeferred();
            }
        }
        """);

    [Test]
    public Task Hmm1053_cleanup_through_a_helper_gets_no_fix() => HmmFixVerifier<CleanupToFreeNotifierFixer>.VerifyNoFixAsync(State + """
        sealed class Svm : MmuNotifierOps
        {
            private readonly DeviceState _state = new();

        """ + Alloc + """
            public override void Release(MmuNotifier subscription, AddressSpace mm) => {|HMM1053:Teardown()|};
            private void Teardown() => _state.Dispose();
        }
        """);

    [Test]
    public Task Hmm1053_cleanup_reading_the_mm_gets_no_fix() => HmmFixVerifier<CleanupToFreeNotifierFixer>.VerifyNoFixAsync(State + """
        sealed class Svm : MmuNotifierOps
        {
            private readonly System.Collections.Generic.Dictionary<AddressSpace, DeviceState> _states = new();

        """ + Alloc + """
            public override void Release(MmuNotifier subscription, AddressSpace mm)
            {
                {|HMM1053:_states[mm].Dispose()|};
            }
        }
        """);

    [Test]
    public Task Hmm1053_cleanup_inside_a_condition_gets_no_fix() => HmmFixVerifier<CleanupToFreeNotifierFixer>.VerifyNoFixAsync(State + """
        sealed class Svm : MmuNotifierOps
        {
            private readonly DeviceState _state = new();
            public bool Bound;

        """ + Alloc + """
            public override void Release(MmuNotifier subscription, AddressSpace mm)
            {
                if (Bound) {|HMM1053:_state.Dispose()|};
            }
        }
        """);
}
