using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;

using Hmm.Analyzers.Rules;

namespace Hmm.Analyzers.Flow;

// MethodFlow, identities: lock-class keys of contract paths and the keys of owned references.
internal sealed partial class MethodFlow
{
    private static bool Holds(FlowState state, string key, bool shared) =>
        state.Find(key) is { Must: true } h && (shared || !h.Shared);

    private IOperation? Unwrap(IOperation? op)
    {
        for (int guard = 0; op != null && guard < 16; guard++)
        {
            switch (op)
            {
                case IConversionOperation c: op = c.Operand; continue;
                case IParenthesizedOperation p: op = p.Operand; continue;
                case IDeclarationExpressionOperation d: op = d.Expression; continue;
                case IFlowCaptureReferenceOperation r when _captures.TryGetValue(r.Id, out var v): op = v; continue;
            }
            break;
        }
        return op;
    }

    /// <summary>The identity of an owned reference: the local, parameter, field or this it lives in.</summary>
    private string? RefKey(IOperation? op) => Unwrap(op) switch
    {
        ILocalReferenceOperation l => "local:" + l.Local.Name + "@" + (l.Local.Locations.Length > 0 ? l.Local.Locations[0].SourceSpan.Start : 0),
        IParameterReferenceOperation p => "param:" + p.Parameter.Name,
        IInstanceReferenceOperation => "this",
        IFieldReferenceOperation f when f.Instance is null or IInstanceReferenceOperation => "field:" + MemberKey(f.Field),
        IPropertyReferenceOperation pr when pr.Instance is null or IInstanceReferenceOperation => "field:" + MemberKey(pr.Property),
        _ => null,
    };

    public static string MemberKey(ISymbol member) => SymbolNames.MemberKey(member);

    public static string Display(string key)
    {
        int dot = key.LastIndexOf('.');
        int prev = dot > 0 ? key.LastIndexOf('.', dot - 1) : -1;
        return prev >= 0 ? key.Substring(prev + 1) : key;
    }

    public static ISymbol? FindMember(ITypeSymbol? type, string name)
    {
        for (var t = type; t != null; t = t.BaseType)
            foreach (var m in t.GetMembers(name))
                if (m is IFieldSymbol or IPropertySymbol) return m;
        if (type != null)
            foreach (var i in type.AllInterfaces)
                foreach (var m in i.GetMembers(name))
                    if (m is IPropertySymbol) return m;
        return null;
    }

    private static ITypeSymbol? TypeOf(ISymbol s) => s switch
    {
        IFieldSymbol f => f.Type,
        IPropertySymbol p => p.Type,
        IParameterSymbol p => p.Type,
        _ => null,
    };

    /// <summary>A dotted lock path from a member of <paramref name="type"/> to its lock class.</summary>
    public static string? ResolvePath(string path, ITypeSymbol type)
    {
        ISymbol? member = null;
        ITypeSymbol? t = type;
        foreach (var seg in path.Split('.'))
        {
            if (seg == "this") continue;
            member = FindMember(t, seg);
            if (member == null) return null;
            t = TypeOf(member);
        }
        return member == null ? null : MemberKey(member);
    }

    /// <summary>A contract's lock expression at a call ("this", a parameter, a path) to its lock class.</summary>
    public static string? Resolve(ContractSet contracts, string path, IMethodSymbol method, IInvocationOperation? inv)
    {
        var segs = path.Split('.');
        string first = segs[0];
        IParameterSymbol? param = null;
        foreach (var p in method.Parameters) if (p.Name == first) param = p;
        if (segs.Length == 1 && (first == "this" || param != null))
        {
            if (inv == null) return null;
            var flow = new MethodFlowKeyer();
            return flow.Key(first == "this" ? inv.Instance : Target(inv, first));
        }
        if (param != null) return ResolvePath(path.Substring(first.Length + 1), param.Type);
        return ResolvePath(path, method.ContainingType);
    }

    /// <summary>Lock-class keys for call arguments (captures are not needed there: arguments are plain member reads).</summary>
    private sealed class MethodFlowKeyer
    {
        public string? Key(IOperation? op)
        {
            while (op is IConversionOperation or IParenthesizedOperation)
                op = op is IConversionOperation c ? c.Operand : ((IParenthesizedOperation)op).Operand;
            return op switch
            {
                IFieldReferenceOperation f => MemberKey(f.Field),
                IPropertyReferenceOperation p => MemberKey(p.Property),
                _ => null,
            };
        }
    }
}
