using System.Collections.Concurrent;
using Hmm.Analyzers.Flow;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace Hmm.Analyzers.Rules;

/// <summary>
/// The shape of a <c>struct hmm_range</c> a driver hands to hmm_range_fault: the pfn array
/// against [Start, End) and the per-entry requests of a retried attempt (HMM-R16, HMM1027), and
/// the device-private owner of a driver that owns device-private memory (HMM-R17, HMM1028).
/// Both follow the range object, not the sequence protocol, so they are operation actions rather
/// than part of the flow engine; HMM1028 needs the whole driver type and is decided at the end.
/// </summary>
internal static class RangeRules
{
    private const int PageShift = 12;
    private const int DevicePrivateKind = 1;   // DevicePageKind.Private (MEMORY_DEVICE_PRIVATE)

    /// <summary>A Fault call in a type that may own device-private memory, with what its own method says of the range's owner.</summary>
    private sealed class FaultSite(INamedTypeSymbol type, Location location, bool? ownerSet)
    {
        public INamedTypeSymbol Type { get; } = type;
        public Location Location { get; } = location;
        /// <summary>True/false when the range is a local created in the method; null when it comes from elsewhere.</summary>
        public bool? OwnerSet { get; } = ownerSet;
    }

    public static void Register(ContractSet contracts, OperationDispatch operations)
    {
        var privateMemory = new ConcurrentDictionary<INamedTypeSymbol, string>(SymbolEqualityComparer.Default);
        var ownerSetters = new ConcurrentDictionary<INamedTypeSymbol, bool>(SymbolEqualityComparer.Default);
        var faults = new ConcurrentBag<FaultSite>();
        operations.On(c => CheckCreation(c, contracts), OperationKind.ObjectCreation);
        operations.On(c =>
        {
            var inv = (IInvocationOperation)c.Operation;
            var m = inv.TargetMethod;
            if (m.Name == "Fault" && contracts.Is(m.ContainingType, KnownNames.HmmRange))
            {
                CheckRetriedRequests(c, inv, contracts);
                if (c.ContainingSymbol.ContainingType is { } t) faults.Add(new FaultSite(t, inv.Syntax.GetLocation(), OwnerOfLocal(inv, contracts)));
            }
            else if (m.Name == "Create" && contracts.Is(m.ContainingType, KnownNames.DevPagemap) && c.ContainingSymbol.ContainingType is { } owner)
            {
                foreach (var a in inv.Arguments)
                    if (a.Parameter != null && contracts.Is(a.Parameter.Type, KnownNames.DevicePageKind)
                        && (!a.Value.ConstantValue.HasValue || a.Value.ConstantValue.Value is int k && k == DevicePrivateKind))
                        privateMemory.TryAdd(owner, owner.Name);
            }
        }, OperationKind.Invocation);
        operations.On(c =>
        {
            var asg = (ISimpleAssignmentOperation)c.Operation;
            if (asg.Target is IPropertyReferenceOperation { Property.Name: "DevPrivateOwner" } p && contracts.Is(p.Property.ContainingType, KnownNames.HmmRange)
                && !IsNullConstant(asg.Value))
            {
                if (c.ContainingSymbol.ContainingType is { } t) ownerSetters.TryAdd(t, true);
                CheckSystemPagesOnly(c, asg, p, contracts);
            }
        }, OperationKind.SimpleAssignment);
        operations.OnCompilationEnd(end =>
        {
            var sites = new List<FaultSite>(faults);
            sites.Sort((a, b) =>
            {
                int c = string.CompareOrdinal(a.Location.SourceTree?.FilePath, b.Location.SourceTree?.FilePath);
                return c != 0 ? c : a.Location.SourceSpan.Start.CompareTo(b.Location.SourceSpan.Start);
            });
            foreach (var s in sites)
            {
                if (!privateMemory.TryGetValue(s.Type, out var name)) continue;
                bool missing = s.OwnerSet is bool set ? !set : !ownerSetters.ContainsKey(s.Type);
                if (missing) end.ReportDiagnostic(Diagnostic.Create(HmmRules.OwnerNotSet, s.Location, name));
            }
        });
    }

    private static bool IsNullConstant(IOperation op) => op.ConstantValue is { HasValue: true, Value: null };

    // ---- HMM-R16: hmm_pfns against [Start, End) ----------------------------------------------

    /// <summary><c>new HmmRange(n, start, end) { Start = …, End = …, HmmPfns = new ulong[k] }</c> with constants that disagree.</summary>
    private static void CheckCreation(OperationSite context, ContractSet contracts)
    {
        var create = (IObjectCreationOperation)context.Operation;
        if (!contracts.Is(create.Type, KnownNames.HmmRange)) return;
        ulong? start = null, end = null;
        IOperation? startOp = null, endOp = null;
        IArrayCreationOperation? pfns = null;
        foreach (var a in create.Arguments)
        {
            if (a.Parameter?.Name == "start") { start = AsULong(a.Value); startOp = a.Value; }
            else if (a.Parameter?.Name == "end") { end = AsULong(a.Value); endOp = a.Value; }
        }
        if (create.Initializer != null)
            foreach (var init in create.Initializer.Initializers)
            {
                if (init is not ISimpleAssignmentOperation { Target: IPropertyReferenceOperation p } asg) continue;
                switch (p.Property.Name)
                {
                    case "Start": start = AsULong(asg.Value); startOp = asg.Value; break;
                    case "End": end = AsULong(asg.Value); endOp = asg.Value; break;
                    case "HmmPfns": pfns = Unwrap(asg.Value) as IArrayCreationOperation; break;
                }
            }
        const ulong mask = (1UL << PageShift) - 1;
        if (start is { } s0 && (s0 & mask) != 0) Report(context, startOp!, $"Start 0x{s0:x} is not page aligned: hmm_range_fault rejects the range");
        if (end is { } e0 && (e0 & mask) != 0) Report(context, endOp!, $"End 0x{e0:x} is not page aligned: hmm_range_fault rejects the range");
        if (start is { } s && end is { } e && pfns is { DimensionSizes.Length: 1 } arr && AsULong(arr.DimensionSizes[0]) is { } n
            && e > s && ((s | e) & mask) == 0 && n != (e - s) >> PageShift)
            Report(context, arr, $"hmm_pfns has {n} entries but [0x{s:x}, 0x{e:x}) covers {(e - s) >> PageShift} pages: hmm_range_fault writes past it or rejects it");
    }

    private static void Report(OperationSite context, IOperation at, string message) =>
        context.ReportDiagnostic(Diagnostic.Create(HmmRules.RangeShape, at.Syntax.GetLocation(), message));

    private static ulong? AsULong(IOperation op)
    {
        if (!op.ConstantValue.HasValue) return null;
        return op.ConstantValue.Value switch
        {
            ulong u => u,
            long l when l >= 0 => (ulong)l,
            int i when i >= 0 => (ulong)i,
            uint ui => ui,
            _ => null,
        };
    }

    private static IOperation Unwrap(IOperation op)
    {
        while (op is IConversionOperation or IParenthesizedOperation)
            op = op is IConversionOperation c ? c.Operand : ((IParenthesizedOperation)op).Operand;
        return op;
    }

    // ---- HMM-R16: per-entry requests of a retried attempt --------------------------------------

    /// <summary>
    /// A Fault inside a loop on a range whose PfnFlagsMask honours per-entry inputs, with nothing in
    /// the loop rewriting its hmm_pfns: the second attempt takes the first one's output words
    /// (pfns and VALID/WRITE bits) as its requests.
    /// </summary>
    private static void CheckRetriedRequests(OperationSite context, IInvocationOperation fault, ContractSet contracts)
    {
        if (SymbolOf(fault.Instance) is not { } range) return;
        ILoopOperation? loop = null;
        IOperation root = fault;
        for (var p = fault.Parent; p != null; p = p.Parent)
        {
            if (p is IAnonymousFunctionOperation or ILocalFunctionOperation) return;
            if (p is ILoopOperation l && loop == null) loop = l;
            root = p;
        }
        if (loop == null) return;
        // The range declared inside the loop is fresh on every pass.
        if (range is ILocalSymbol local && local.Locations.Length > 0 && loop.Syntax.Span.Contains(local.Locations[0].SourceSpan)) return;
        bool perEntry = false;
        foreach (var op in root.Descendants())
            if (op is ISimpleAssignmentOperation { Target: IPropertyReferenceOperation { Property.Name: "PfnFlagsMask" } pm } asg
                && contracts.Is(pm.Property.ContainingType, KnownNames.HmmRange) && AsULong(asg.Value) is { } v && v != 0
                && SymbolEqualityComparer.Default.Equals(OwnerOf(pm), range))
                perEntry = true;
        if (!perEntry) return;
        foreach (var op in loop.Body.DescendantsAndSelf())
        {
            switch (op)
            {
                // Any rewrite of the array or the range itself inside the loop counts (helpers too: precision first).
                case IPropertyReferenceOperation { Property.Name: "HmmPfns" } pr when SymbolEqualityComparer.Default.Equals(OwnerOf(pr), range):
                    if (RewritesPfns(pr)) return;
                    break;
                case IArgumentOperation arg when SymbolEqualityComparer.Default.Equals(SymbolOf(arg.Value), range):
                    return;
                case ISimpleAssignmentOperation asg when SymbolEqualityComparer.Default.Equals(SymbolOf(asg.Target), range):
                    return;
            }
        }
        context.ReportDiagnostic(Diagnostic.Create(HmmRules.RangeShape, fault.Syntax.GetLocation(),
            "This retry reuses hmm_pfns as written by the previous attempt, but PfnFlagsMask honours per-entry inputs: rewrite each entry's request bits before every hmm_range_fault"));
    }

    /// <summary>Whether a use of X.HmmPfns may change its entries (anything but reading an element or the length).</summary>
    private static bool RewritesPfns(IPropertyReferenceOperation pfns)
    {
        IOperation op = pfns;
        var parent = op.Parent;
        while (parent is IConversionOperation or IParenthesizedOperation) { op = parent; parent = parent.Parent; }
        switch (parent)
        {
            case IArrayElementReferenceOperation ae when ae.ArrayReference == op:
            {
                IOperation e = ae;
                var p = e.Parent;
                while (p is IConversionOperation or IParenthesizedOperation) { e = p; p = p.Parent; }
                return p switch
                {
                    IAssignmentOperation a => a.Target == e,
                    IIncrementOrDecrementOperation => true,
                    IArgumentOperation arg => arg.Parameter?.RefKind is RefKind.Ref or RefKind.Out,
                    _ => false,
                };
            }
            case IPropertyReferenceOperation { Property.Name: "Length" }:
                return false;
            default:
                return true;
        }
    }

    /// <summary>The variable a range expression lives in: a local, parameter or field (of this).</summary>
    private static ISymbol? SymbolOf(IOperation? op) => op == null ? null : Unwrap(op) switch
    {
        ILocalReferenceOperation l => l.Local,
        IParameterReferenceOperation p => p.Parameter,
        IFieldReferenceOperation { Instance: null or IInstanceReferenceOperation } f => f.Field,
        IPropertyReferenceOperation { Instance: null or IInstanceReferenceOperation } p => p.Property,
        _ => null,
    };

    /// <summary>The range variable a member access applies to, following object initializers to the variable they initialise.</summary>
    private static ISymbol? OwnerOf(IPropertyReferenceOperation member)
    {
        if (member.Instance is IInstanceReferenceOperation { ReferenceKind: InstanceReferenceKind.ImplicitReceiver })
        {
            for (var p = member.Parent; p != null; p = p.Parent)
            {
                if (p is not IObjectCreationOperation create) continue;
                var up = create.Parent;
                while (up is IConversionOperation) up = up.Parent;
                return up switch
                {
                    IVariableInitializerOperation { Parent: IVariableDeclaratorOperation d } => d.Symbol,
                    ISimpleAssignmentOperation a => SymbolOf(a.Target),
                    _ => null,
                };
            }
            return null;
        }
        return SymbolOf(member.Instance);
    }

    // ---- HMM-R17's inverse: no owner on a system-pages-only path -----------------------------

    /// <summary>DevPrivateOwner set on a range whose HmmPfns (in the same method) come from a [SystemPagesOnly] type or member.</summary>
    private static void CheckSystemPagesOnly(OperationSite context, ISimpleAssignmentOperation ownerSet, IPropertyReferenceOperation owner, ContractSet contracts)
    {
        if (contracts.Type(KnownNames.SystemPagesOnly) is not { } marker) return;
        var range = OwnerOf(owner);
        IOperation root = ownerSet;
        if (range == null)
        {
            // new HmmRange { HmmPfns = …, DevPrivateOwner = … } used without a variable: that initializer alone.
            while (root.Parent != null && root is not IObjectOrCollectionInitializerOperation) root = root.Parent;
            if (root is not IObjectOrCollectionInitializerOperation) return;
        }
        else
            while (root.Parent != null) root = root.Parent;
        foreach (var op in root.Descendants())
        {
            if (op is not ISimpleAssignmentOperation { Target: IPropertyReferenceOperation { Property.Name: "HmmPfns" } pfns } asg
                || !contracts.Is(pfns.Property.ContainingType, KnownNames.HmmRange) || !SymbolEqualityComparer.Default.Equals(OwnerOf(pfns), range)) continue;
            if (range == null && asg.Parent != root) continue;
            if (Unwrap(asg.Value) is not IMemberReferenceOperation source) continue;
            if (HasMarker(source.Member, marker) || HasMarker(source.Member.ContainingType, marker))
            {
                context.ReportDiagnostic(Diagnostic.Create(HmmRules.OwnerOnSystemPagesPath, ownerSet.Syntax.GetLocation(), source.Member.ContainingType.Name + "." + source.Member.Name));
                return;
            }
        }
    }

    private static bool HasMarker(ISymbol? symbol, INamedTypeSymbol marker)
    {
        if (symbol == null) return false;
        foreach (var a in symbol.GetAttributes())
            if (SymbolEqualityComparer.Default.Equals(a.AttributeClass, marker)) return true;
        return false;
    }

    // ---- HMM-R17 helpers -----------------------------------------------------------------------

    /// <summary>For a Fault on a local created in the method: whether DevPrivateOwner is set on it there; null otherwise.</summary>
    private static bool? OwnerOfLocal(IInvocationOperation fault, ContractSet contracts)
    {
        if (SymbolOf(fault.Instance) is not ILocalSymbol local) return null;
        IOperation root = fault;
        while (root.Parent != null) root = root.Parent;
        bool created = false, other = false, set = false;
        foreach (var op in root.Descendants())
        {
            switch (op)
            {
                case IVariableDeclaratorOperation d when SymbolEqualityComparer.Default.Equals(d.Symbol, local):
                    if (d.Initializer != null) Classify(d.Initializer.Value, ref created, ref other);
                    break;
                case ISimpleAssignmentOperation a when SymbolEqualityComparer.Default.Equals(SymbolOf(a.Target), local):
                    Classify(a.Value, ref created, ref other);
                    break;
                case ISimpleAssignmentOperation { Target: IPropertyReferenceOperation { Property.Name: "DevPrivateOwner" } p } a
                    when contracts.Is(p.Property.ContainingType, KnownNames.HmmRange) && !IsNullConstant(a.Value)
                        && SymbolEqualityComparer.Default.Equals(OwnerOf(p), local):
                    set = true;
                    break;
                // Handed to a helper (which may set the owner) or through ref/out: not decided here.
                case IArgumentOperation arg when SymbolEqualityComparer.Default.Equals(SymbolOf(arg.Value), local):
                    other = true;
                    break;
            }
        }
        if (set) return true;
        return created && !other ? false : null;
    }

    private static void Classify(IOperation value, ref bool created, ref bool other)
    {
        if (Unwrap(value) is IObjectCreationOperation) created = true;
        else other = true;
    }
}
