using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Operations;

namespace Hmm.Analyzers.Flow;

/// <summary>
/// Looking through the operation-tree wrappers that do not change which value a rule is about:
/// implicit or explicit conversions, parentheses, and the conditional-access indirection of <c>x?.M()</c>.
/// Shared by the flow passes and the rules so that they agree on what "the same value" means.
/// </summary>
internal static class OperationTrees
{
    /// <summary>The operation under any conversions and parentheses (null for null).</summary>
    public static IOperation? Unwrap(IOperation? op)
    {
        while (op is IConversionOperation or IParenthesizedOperation)
            op = op is IConversionOperation c ? c.Operand : ((IParenthesizedOperation)op).Operand;
        return op;
    }

    /// <summary>The receiver of a call, unwrapped, through <c>x?.M()</c> (null for a static call).</summary>
    public static IOperation? Receiver(IInvocationOperation inv)
    {
        var r = Unwrap(inv.Instance);
        if (r is not IConditionalAccessInstanceOperation) return r;
        for (var p = inv.Parent; p != null; p = p.Parent)
            if (p is IConditionalAccessOperation ca) return Unwrap(ca.Operation);
        return null;
    }
}
