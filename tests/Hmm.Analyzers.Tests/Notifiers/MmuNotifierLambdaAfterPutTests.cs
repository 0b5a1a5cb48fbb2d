using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Notifiers;

/// <summary>
/// HMM1051 for bodies that run later than they are written: a lambda or a local function created
/// (declared) before the notifier's put and invoked after it — directly, through a delegate local,
/// or through <c>Invoke</c> / <c>?.Invoke()</c> — reads a notifier that may already be freed. The
/// close cases: invoked before the put, not capturing the notifier, invoked after a new Get.
/// </summary>
public sealed class MmuNotifierLambdaAfterPutTests
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
    public Task Lambda_created_before_the_put_and_invoked_after_it_fires() => Verify("""
            public void Unbind(MmuNotifier n)
            {
                Action use = () => {|HMM1051:Work(n)|};
                n.Put();
                use();
            }

        """);

    [Test]
    public Task Lambda_reading_mm_invoked_after_a_put_two_helpers_deep_fires() => Verify("""
            public AddressSpace? Unbind(MmuNotifier n)
            {
                Func<AddressSpace?> mmOf = () => {|HMM1051:n.Mm|};
                Release(n);
                return mmOf();
            }

        """);

    [Test]
    public Task Local_function_invoked_after_the_put_fires() => Verify("""
            public void Unbind(MmuNotifier n)
            {
                n.Put();
                Log();

                void Log() => _ = {|HMM1051:n.Users|};
            }

        """);

    [Test]
    public Task Local_function_stored_in_a_delegate_local_and_invoked_after_the_put_fires() => Verify("""
            public void Unbind(MmuNotifier? n)
            {
                Action later = Log;
                n?.Put();
                later.Invoke();

                void Log() => {|HMM1051:Work(n)|};
            }

        """);

    [Test]
    public Task Conditional_invoke_of_a_stored_lambda_after_the_put_fires() => Verify("""
            public void Unbind(MmuNotifier n)
            {
                Action? use = () => {|HMM1051:Work(n)|};
                Release(n);
                use?.Invoke();
            }

        """);

    // ---- silent -------------------------------------------------------------------------------------

    [Test]
    public Task Lambda_created_and_invoked_before_the_put_is_silent() => Verify("""
            public AddressSpace? Unbind(MmuNotifier n)
            {
                Func<AddressSpace?> mmOf = () => n.Mm;
                var mm = mmOf();
                Release(n);
                return mm;
            }

        """);

    [Test]
    public Task Lambda_that_does_not_capture_the_notifier_is_silent() => Verify("""
            public void Unbind(MmuNotifier n)
            {
                int count = 0;
                Action tick = () => count++;
                Release(n);
                tick();
                Work(null);
            }

        """);

    [Test]
    public Task Lambda_invoked_after_a_new_get_is_silent() => Verify("""
            public void Rebind(AddressSpace mm, MmuNotifier n)
            {
                Action use = () => Work(n);
                n.Put();
                if (MmuNotifier.Get(s_ops, mm, out n) != Errno.Ok) return;
                use();
                n.Put();
            }

        """);

    [Test]
    public Task Local_function_invoked_only_before_the_put_is_silent() => Verify("""
            public void Unbind(MmuNotifier n)
            {
                Log();
                Release(n);

                void Log() => Work(n);
            }

        """);
}
