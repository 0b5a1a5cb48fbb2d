using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Operations;

namespace Hmm.Analyzers.Flow;

/// <summary>
/// The flow engine's pre-scan of one body, in ONE walk of its operation tree: whether the body needs the
/// control-flow graph (a lock, reference or protocol effect: a state-changing contract call, a
/// <c>[GuardedBy]</c> member, a NotifierRange or HmmRange property), whether it makes a call the
/// whole-program pass follows, which parameters it stores away (<see cref="ReferenceEscapes.IsStored"/>),
/// whether it backs off (<see cref="RetryLoops.IsBackOff"/>, outside lambdas and local functions as
/// <see cref="RetryLoops"/> walks), and its calls in tree order for the no-CFG path.
/// </summary>
/// <remarks>
/// Before: up to four walks (the stateful test, the stored parameters, the back-off test, and the calls
/// again when no CFG was built), each through Roslyn's allocating <c>Descendants()</c> iterator.
/// </remarks>
internal sealed class BodyScan
{
    private BodyScan() { }

    /// <summary>The body changes or reads flow state: it needs the CFG walk (MethodFlow).</summary>
    public bool Stateful { get; private set; }

    /// <summary>A call to a method with effects, a blocking BCL method or a source method (only meaningful when not <see cref="Stateful"/>).</summary>
    public bool Calls { get; private set; }

    /// <summary>A back-off call outside lambdas (only meaningful when not <see cref="Stateful"/>).</summary>
    public bool BacksOff { get; private set; }

    /// <summary>Parameters the body stores away; null when none (the body's own method's parameters only).</summary>
    public HashSet<string>? StoredParameters { get; private set; }

    /// <summary>Every invocation, lambdas included, in pre-order (only collected while not <see cref="Stateful"/>).</summary>
    public List<IInvocationOperation> Invocations { get; } = [];

    /// <summary>
    /// Scans <paramref name="body"/>. When <paramref name="stopWhenStateful"/> (the method's own contract already
    /// needs the CFG) or once a stateful operation is met, only the stored parameters are still gathered.
    /// </summary>
    public static BodyScan Of(IOperation body, IMethodSymbol method, ContractSet contracts, bool stopWhenStateful)
    {
        var scan = new BodyScan { Stateful = stopWhenStateful };
        bool parameters = !method.Parameters.IsEmpty;
        if (scan.Stateful && !parameters) return scan;
        // (operation, inside a lambda or local function): pre-order, children left to right, as Descendants() visits.
        var stack = new Stack<(IOperation Op, bool Nested)>();
        stack.Push((body, false));
        while (stack.Count > 0)
        {
            var (op, nested) = stack.Pop();
            if (!scan.Stateful)
            {
                switch (op)
                {
                    case IInvocationOperation inv:
                        var c = contracts.For(inv.TargetMethod);
                        if (c.ChangesState) scan.Stateful = true;
                        if (c.HasEffects || ContractSet.IsBlockingBcl(inv.TargetMethod) || SymbolNames.HasSource(inv.TargetMethod)) scan.Calls = true;
                        if (!nested && !scan.BacksOff && RetryLoops.IsBackOff(inv, contracts)) scan.BacksOff = true;
                        scan.Invocations.Add(inv);
                        break;
                    case IFieldReferenceOperation fr when contracts.GuardOf(fr.Field) != null:
                    case IPropertyReferenceOperation pr when contracts.GuardOf(pr.Property) != null
                        || contracts.Is(pr.Property.ContainingType, KnownNames.NotifierRange)
                        || contracts.Is(pr.Property.ContainingType, KnownNames.HmmRange):
                        scan.Stateful = true;
                        break;
                }
                if (scan.Stateful && !parameters) return scan;
            }
            if (parameters && op is IParameterReferenceOperation p && ReferenceEscapes.IsStored(p))
                (scan.StoredParameters ??= new(StringComparer.Ordinal)).Add(p.Parameter.Name);
            bool childNested = nested || op is IAnonymousFunctionOperation or ILocalFunctionOperation;
            foreach (var child in op.ChildOperations.Reverse()) stack.Push((child, childNested));
        }
        return scan;
    }
}
