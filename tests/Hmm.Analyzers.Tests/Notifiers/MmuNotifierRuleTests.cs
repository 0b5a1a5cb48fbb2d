using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Notifiers;

/// <summary>
/// HMM1050–HMM1053: the whole-mm mmu_notifier's get/put lifetime — a reference leaked on a path,
/// a notifier used or put again after its last put, a module whose unload path does not drain
/// the deferred frees, cleanup placed in release instead of free_notifier.
/// </summary>
public sealed class MmuNotifierRuleTests
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
            private MmuNotifier? _kept;
            public void Dispose() => MmuNotifier.Synchronize(_machine);
            private static void Work(MmuNotifier n) { }

        """;

    private static Task Verify(string members) => HmmVerifier.VerifyAsync(Head + members + "}\n");

    private static Task VerifyFree(string source) => HmmVerifier.VerifyAsync(source);

    // ---- HMM1050: reference not put on some path --------------------------------------------------

    [Test]
    public Task Leak_on_an_early_error_return_fires() => Verify("""
            public Errno Bind(AddressSpace mm, bool busy)
            {
                if ({|HMM1050:MmuNotifier.Get(s_ops, mm, out var n)|} != Errno.Ok) return Errno.ENOMEM;
                if (busy) return Errno.EBUSY;
                n!.Put();
                return Errno.Ok;
            }

        """);

    [Test]
    public Task Never_put_fires() => Verify("""
            public void Touch(AddressSpace mm)
            {
                if ({|HMM1050:MmuNotifier.Get(s_ops, mm, out var n)|} != Errno.Ok) return;
                Work(n!);
            }

        """);

    [Test]
    public Task Put_only_on_one_branch_fires() => Verify("""
            public void Touch(AddressSpace mm, bool done)
            {
                if ({|HMM1050:MmuNotifier.Get(s_ops, mm, out var n)|} != Errno.Ok) return;
                if (done) n!.Put();
            }

        """);

    [Test]
    public Task Put_in_finally_is_silent() => Verify("""
            public void Touch(AddressSpace mm)
            {
                if (MmuNotifier.Get(s_ops, mm, out var n) != Errno.Ok) return;
                try { Work(n!); }
                finally { n!.Put(); }
            }

        """);

    [Test]
    public Task Reference_kept_in_a_field_is_silent() => Verify("""
            public Errno Bind(AddressSpace mm)
            {
                Errno e = MmuNotifier.Get(s_ops, mm, out var n);
                if (e != Errno.Ok) return e;
                _kept = n;
                return Errno.Ok;
            }

        """);

    [Test]
    public Task Put_by_a_helper_two_calls_deep_is_silent() => Verify("""
            public void Touch(AddressSpace mm)
            {
                if (MmuNotifier.Get(s_ops, mm, out var n) != Errno.Ok) return;
                Done(n!);
            }

            private static void Done(MmuNotifier n) => Drop(n);
            private static void Drop(MmuNotifier n) => n.Put();

        """);

    // ---- HMM1051: used after its last put -----------------------------------------------------------

    [Test]
    public Task Member_read_after_put_fires() => Verify("""
            public AddressSpace? Unbind(MmuNotifier n)
            {
                n.Put();
                return {|HMM1051:n.Mm|};
            }

        """);

    [Test]
    public Task Second_put_on_a_path_fires() => Verify("""
            public void Unbind(MmuNotifier n, bool early)
            {
                if (early) n.Put();
                {|HMM1051:n.Put()|};
            }

        """);

    [Test]
    public Task Use_after_a_put_two_helpers_deep_fires() => Verify("""
            public int Unbind(MmuNotifier n)
            {
                Release(n);
                return {|HMM1051:n.Users|};
            }

            private static void Release(MmuNotifier n) => DropLast(n);
            private static void DropLast(MmuNotifier n) => n.Put();

        """);

    [Test]
    public Task Field_passed_on_after_put_fires() => Verify("""
            public void Unbind()
            {
                _kept!.Put();
                {|HMM1051:Work(_kept)|};
            }

        """);

    [Test]
    public Task Use_before_put_is_silent() => Verify("""
            public AddressSpace? Unbind(MmuNotifier n)
            {
                var mm = n.Mm;
                Work(n);
                n.Put();
                return mm;
            }

        """);

    [Test]
    public Task New_get_after_put_is_silent() => Verify("""
            public void Rebind(AddressSpace mm, MmuNotifier n)
            {
                n.Put();
                if (MmuNotifier.Get(s_ops, mm, out n!) != Errno.Ok) return;
                Work(n);
                n.Put();
            }

        """);

    [Test]
    public Task Put_and_use_on_exclusive_branches_is_silent() => Verify("""
            public void Unbind(MmuNotifier n, bool last)
            {
                if (last) n.Put();
                else Work(n);
            }

        """);

    [Test]
    public Task Put_inside_release_is_silent() => VerifyFree("""
        sealed class SelfPutOps : MmuNotifierOps
        {
            public override void Release(MmuNotifier subscription, AddressSpace mm) => subscription.Put();

            public override void FreeNotifier(MmuNotifier subscription) { }
        }

        """);

    // ---- HMM1052: no Synchronize on the unload path ------------------------------------------------

    [Test]
    public Task Type_without_unload_path_fires() => VerifyFree(Ops + """
        sealed class Bind
        {
            private static readonly Ops s_ops = new();
            public MmuNotifier? Open(AddressSpace mm)
                => {|HMM1052:MmuNotifier.Get(s_ops, mm, out var n)|} == Errno.Ok ? n : null;
        }

        """);

    [Test]
    public Task Dispose_without_synchronize_fires() => VerifyFree(Ops + """
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

    [Test]
    public Task Get_two_helpers_deep_and_module_exit_without_synchronize_fires() => VerifyFree(Ops + """
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
            public void Exit() => Stop();
            private void Stop() => _n?.Put();
        }

        """);

    [Test]
    public Task Dispose_calling_synchronize_is_silent() => VerifyFree(Ops + """
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
    public Task Module_exit_synchronizing_two_helpers_deep_is_silent() => VerifyFree(Ops + """
        sealed class Module
        {
            private static readonly Ops s_ops = new();
            private readonly Machine _machine = null!;
            private MmuNotifier? _n;
            public void Open(AddressSpace mm)
            {
                if (MmuNotifier.Get(s_ops, mm, out var n) == Errno.Ok) _n = n;
            }
            [ModuleExit]
            public void Exit() => Teardown();
            private void Teardown() => Drain();
            private void Drain()
            {
                _n?.Put();
                MmuNotifier.Synchronize(_machine);
            }
        }

        """);

    [Test]
    public Task Register_and_unregister_only_is_silent() => VerifyFree(Ops + """
        sealed class Bind
        {
            private readonly MmuNotifier _n = new(new Ops());
            public Errno Open(AddressSpace mm) => _n.Register(mm);
            public void Close(AddressSpace mm) => _n.Unregister(mm);
        }

        """);

    // ---- HMM1053: cleanup in release ------------------------------------------------------------------

    private const string State = """
        sealed class DeviceState : IDisposable
        {
            public void Dispose() { }
        }

        """;

    [Test]
    public Task Dispose_in_release_without_free_fires() => VerifyFree(State + """
        sealed class Svm : MmuNotifierOps
        {
            private readonly DeviceState _state = new();
            public override Errno AllocNotifier(AddressSpace mm, out MmuNotifier? subscription)
            {
                subscription = new MmuNotifier(this);
                return Errno.Ok;
            }
            public override void Release(MmuNotifier subscription, AddressSpace mm) => {|HMM1053:_state.Dispose()|};
        }

        """);

    [Test]
    public Task Cleanup_two_helpers_below_release_fires() => VerifyFree(State + """
        sealed class Svm : MmuNotifierOps
        {
            private readonly DeviceState _state = new();
            public override Errno AllocNotifier(AddressSpace mm, out MmuNotifier? subscription)
            {
                subscription = new MmuNotifier(this);
                return Errno.Ok;
            }
            public override void Release(MmuNotifier subscription, AddressSpace mm) => {|HMM1053:Teardown()|};
            private void Teardown() => Free();
            private void Free() => _state.Dispose();
        }

        """);

    [Test]
    public Task Free_that_does_not_clean_up_fires() => VerifyFree(State + """
        sealed class Svm : MmuNotifierOps
        {
            private readonly DeviceState _state = new();
            public int Frees;
            public override Errno AllocNotifier(AddressSpace mm, out MmuNotifier? subscription)
            {
                subscription = new MmuNotifier(this);
                return Errno.Ok;
            }
            public override void Release(MmuNotifier subscription, AddressSpace mm)
            {
                {|HMM1053:_state.Dispose()|};
            }
            public override void FreeNotifier(MmuNotifier subscription) => Frees++;
        }

        """);

    [Test]
    public Task Cleanup_in_free_notifier_is_silent() => VerifyFree(State + """
        sealed class Svm : MmuNotifierOps
        {
            private readonly DeviceState _state = new();
            public volatile bool Dead;
            public override Errno AllocNotifier(AddressSpace mm, out MmuNotifier? subscription)
            {
                subscription = new MmuNotifier(this);
                return Errno.Ok;
            }
            public override void Release(MmuNotifier subscription, AddressSpace mm) => Dead = true;
            public override void FreeNotifier(MmuNotifier subscription) => _state.Dispose();
        }

        """);

    [Test]
    public Task Release_that_only_puts_is_silent() => VerifyFree("""
        sealed class Svm : MmuNotifierOps
        {
            public override Errno AllocNotifier(AddressSpace mm, out MmuNotifier? subscription)
            {
                subscription = new MmuNotifier(this);
                return Errno.Ok;
            }
            public override void Release(MmuNotifier subscription, AddressSpace mm) => subscription.Put();
        }

        """);

    [Test]
    public Task Cleanup_in_release_of_register_only_ops_is_silent() => VerifyFree(State + """
        sealed class Svm : MmuNotifierOps
        {
            private readonly DeviceState _state = new();
            public override void Release(MmuNotifier subscription, AddressSpace mm) => _state.Dispose();
        }

        """);

    [Test]
    public Task Cleanup_in_both_release_and_free_is_silent() => VerifyFree(State + """
        sealed class Svm : MmuNotifierOps
        {
            private readonly DeviceState _state = new();
            public override Errno AllocNotifier(AddressSpace mm, out MmuNotifier? subscription)
            {
                subscription = new MmuNotifier(this);
                return Errno.Ok;
            }
            public override void Release(MmuNotifier subscription, AddressSpace mm) => _state.Dispose();
            public override void FreeNotifier(MmuNotifier subscription) => _state.Dispose();
        }

        """);

    // ---- the callback contracts reach overrides of MmuNotifierOps -------------------------------------

    [Test]
    public Task Unregister_inside_release_is_hmm1016() => VerifyFree("""
        sealed class SelfUnregisterOps : MmuNotifierOps
        {
            public override void Release(MmuNotifier subscription, AddressSpace mm) => {|HMM1016:subscription.Unregister(mm)|};
        }

        """);

    [Test]
    public Task Synchronize_inside_release_is_hmm1016() => VerifyFree("""
        sealed class SyncOps : MmuNotifierOps
        {
            public override void Release(MmuNotifier subscription, AddressSpace mm) => {|HMM1016:MmuNotifier.Synchronize(mm.Machine)|};
        }

        """);

    [Test]
    public Task Mm_put_inside_release_is_hmm1017() => VerifyFree("""
        sealed class MmPutOps : MmuNotifierOps
        {
            public override void Release(MmuNotifier subscription, AddressSpace mm) => {|HMM1017:mm.Put()|};
        }

        """);
}
