using System.Runtime.CompilerServices;
using Microsoft.CodeAnalysis;

namespace Hmm.Analyzers.Flow;

/// <summary>
/// Per-symbol facts the rules ask for at every call or member reference, computed once per symbol
/// instead of once per operation: the display name (what <c>ToDisplayString()</c> builds, with its
/// allocations, each time) and whether a method has source (a source symbol's
/// <c>DeclaringSyntaxReferences</c> is a new array each time). Keyed by symbol identity in weak
/// tables: a symbol lives as long as its compilation, and so does its entry; the answer for a key
/// never changes, so a miss in a race only computes it twice.
/// </summary>
internal static class SymbolNames
{
    private static readonly ConditionalWeakTable<ISymbol, string> Names = new();
    private static readonly ConditionalWeakTable<ISymbol, string> MemberKeys = new();
    private static readonly ConditionalWeakTable<IMethodSymbol, object> Sources = new();
    private static readonly object Yes = true, No = false;
    private static readonly ConditionalWeakTable<ISymbol, string>.CreateValueCallback Display = static s => s.ToDisplayString();
    private static readonly ConditionalWeakTable<ISymbol, string>.CreateValueCallback Keyed = static m => Of(m.ContainingType) + "." + m.Name;
    private static readonly ConditionalWeakTable<IMethodSymbol, object>.CreateValueCallback Declared = static m => m.DeclaringSyntaxReferences.Length > 0 ? Yes : No;

    /// <summary><c>symbol.ToDisplayString()</c>, computed once per symbol.</summary>
    public static string Of(ISymbol symbol) => Names.GetValue(symbol, Display);

    /// <summary><c>namespace?.ToDisplayString()</c>, computed once per namespace.</summary>
    public static string? Of(INamespaceSymbol? ns) => ns == null ? null : Names.GetValue(ns, Display);

    /// <summary>A member's lock-class key, <c>ContainingType.ToDisplayString() + "." + Name</c>, built once per member.</summary>
    public static string MemberKey(ISymbol member) => MemberKeys.GetValue(member, Keyed);

    /// <summary><c>method.DeclaringSyntaxReferences.Length &gt; 0</c>, computed once per method.</summary>
    public static bool HasSource(IMethodSymbol method) => (bool)Sources.GetValue(method, Declared);
}
