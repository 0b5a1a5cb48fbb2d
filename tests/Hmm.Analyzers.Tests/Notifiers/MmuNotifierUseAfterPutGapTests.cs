using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Notifiers;

/// <summary>
/// HMM1051 beyond plain variables: aliases of the notifier (<c>var m = n</c>), the conditional put
/// <c>n?.Put()</c> (a flow capture in the CFG), and lambda / local-function bodies — each with
/// helpers two calls deep, and the close cases that must stay silent.
/// </summary>
public sealed class MmuNotifierUseAfterPutGapTests
{
    private const string Head = """
        sealed class Ops : MmuNotifierOps
        {
            public override Errno AllocNotifier(AddressSpace mm, out MmuNotifier? subscription)
            {
                subscription = new MmuNotifier(this);
                return Errno.Ok;
            }
        }

        sealed class Drv : IDisposable
        {
            private static readonly Ops s_ops = new();
            private readonly Machine _machine = null!;
            public void Dispose() => MmuNotifier.Synchronize(_machine);
            private static void Work(MmuNotifier? n) { }
            private static void Release(MmuNotifier? n) => DropLast(n);
            private static void DropLast(MmuNotifier? n) => n?.Put();

        """;

    private static Task Verify(string members) => HmmVerifier.VerifyAsync(Head + members + "}\n");

    // ---- fire ---------------------------------------------------------------------------------------

    [Test]
    public Task Alias_read_after_the_put_of_its_source_fires() => Verify("""
            public AddressSpace? Unbind(MmuNotifier n)
            {
                var m = n;
                n.Put();
                return {|HMM1051:m.Mm|};
            }

        """);

    [Test]
    public Task Source_used_after_its_alias_is_put_two_helpers_deep_fires() => Verify("""
            public int Unbind(MmuNotifier n)
            {
                MmuNotifier m = n;
                Release(m);
                return {|HMM1051:n.Users|};
            }

        """);

    [Test]
    public Task Use_after_a_conditional_put_fires() => Verify("""
            public AddressSpace? Unbind(MmuNotifier? n)
            {
                n?.Put();
                return {|HMM1051:n!.Mm|};
            }

        """);

    [Test]
    public Task Use_after_a_conditional_put_two_helpers_deep_fires() => Verify("""
            public void Unbind(MmuNotifier? n)
            {
                Release(n);
                {|HMM1051:Work(n)|};
            }

        """);

    [Test]
    public Task Second_conditional_put_fires() => Verify("""
            public void Unbind(MmuNotifier? n)
            {
                n?.Put();
                n?{|HMM1051:.Put()|};
            }

        """);

    [Test]
    public Task Use_after_put_inside_a_lambda_fires() => Verify("""
            public Action Later(MmuNotifier n) => () =>
            {
                n.Put();
                {|HMM1051:Work(n)|};
            };

        """);

    [Test]
    public Task Lambda_created_after_the_put_uses_a_freed_notifier_fires() => Verify("""
            public Action Unbind(MmuNotifier n)
            {
                Release(n);
                return () => {|HMM1051:Work(n)|};
            }

        """);

    [Test]
    public Task Use_after_put_inside_a_local_function_fires() => Verify("""
            public void Unbind(MmuNotifier n)
            {
                Drop(n);

                static void Drop(MmuNotifier x)
                {
                    x.Put();
                    _ = {|HMM1051:x.Mm|};
                }
            }

        """);

    // ---- silent -------------------------------------------------------------------------------------

    [Test]
    public Task Alias_reassigned_before_the_put_is_silent() => Verify("""
            public void Unbind(MmuNotifier n, MmuNotifier other)
            {
                var m = n;
                m = other;
                n.Put();
                Work(m);
            }

        """);

    [Test]
    public Task Alias_of_a_reassigned_source_is_silent() => Verify("""
            public void Unbind(MmuNotifier n, MmuNotifier other)
            {
                var m = n;
                n = other;
                n.Put();
                Work(m);
            }

        """);

    [Test]
    public Task Alias_used_before_a_put_two_helpers_deep_is_silent() => Verify("""
            public AddressSpace? Unbind(MmuNotifier n)
            {
                var m = n;
                var mm = m.Mm;
                Release(n);
                return mm;
            }

        """);

    [Test]
    public Task New_get_after_a_conditional_put_is_silent() => Verify("""
            public void Rebind(AddressSpace mm, MmuNotifier? n)
            {
                n?.Put();
                if (MmuNotifier.Get(s_ops, mm, out n) != Errno.Ok) return;
                Work(n);
                n!.Put();
            }

        """);

    [Test]
    public Task Lambda_created_before_the_put_is_silent() => Verify("""
            public void Unbind(MmuNotifier n)
            {
                Action use = () => Work(n);
                use();
                Release(n);
            }

        """);

    [Test]
    public Task Local_function_using_its_own_notifier_before_the_put_is_silent() => Verify("""
            public void Unbind(MmuNotifier n)
            {
                Drop(n);

                static void Drop(MmuNotifier x)
                {
                    Work(x);
                    x.Put();
                }
            }

        """);
}
