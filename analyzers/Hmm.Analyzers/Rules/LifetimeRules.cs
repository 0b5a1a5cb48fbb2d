using System.Collections.Concurrent;
using Hmm.Analyzers.Flow;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;
using static Hmm.Analyzers.Flow.OperationTrees;

namespace Hmm.Analyzers.Rules;

/// <summary>
/// Object lifetimes the flow engine does not follow: an interval notifier inserted and never
/// removed anywhere in the compilation (HMM-R12, HMM1031), and a migration set up inside
/// migrate_to_ram without the faulting page (MIG-R08, HMM1033). Both are decided from where the
/// object lives (a field of the driver, or a local that never escapes its method); a notifier
/// or migration that escapes into code the analysis cannot see is left alone (precision first).
/// </summary>
internal static class LifetimeRules
{
    private sealed class InsertSite(ISymbol member, Location location)
    {
        public ISymbol Member { get; } = member;
        public Location Location { get; } = location;
    }

    public static void Register(ContractSet contracts, OperationDispatch operations)
    {
        if (contracts.Type(KnownNames.IntervalNotifier) is not { } notifierType) return;
        var inserts = new ConcurrentBag<InsertSite>();
        var removed = new ConcurrentDictionary<ISymbol, bool>(SymbolEqualityComparer.Default);
        var escaped = new ConcurrentDictionary<ISymbol, bool>(SymbolEqualityComparer.Default);
        operations.On(c =>
        {
            var inv = (IInvocationOperation)c.Operation;
            var m = inv.TargetMethod;
            if (SymbolEqualityComparer.Default.Equals(m.ContainingType, notifierType))
            {
                var receiver = Receiver(inv);
                if (m.Name is "Insert" or "InsertLocked")
                {
                    if (MemberOf(receiver) is { } member) inserts.Add(new InsertSite(member, inv.Syntax.GetLocation()));
                    else if (receiver is ILocalReferenceOperation lr && NeverRemovedLocal(inv, lr.Local, notifierType))
                        c.ReportDiagnostic(Diagnostic.Create(HmmRules.NotifierNeverRemoved, inv.Syntax.GetLocation()));
                }
                else if (m.Name == "Remove" && MemberOf(receiver) is { } member)
                    removed.TryAdd(member, true);
            }
            else if (m.Name == "Setup" && contracts.Is(m.ContainingType, KnownNames.MigrateVma))
                CheckFaultPage(c, inv, contracts);
        }, OperationKind.Invocation);
        // A notifier member handed elsewhere (argument, assignment, return) may be removed through that alias.
        operations.On(c =>
        {
            var op = c.Operation;
            var type = op switch { IFieldReferenceOperation f => f.Field.Type, IPropertyReferenceOperation p => p.Property.Type, _ => null };
            if (!SymbolEqualityComparer.Default.Equals(type, notifierType) || MemberOf(op) is not { } member) return;
            IOperation at = op;
            var parent = op.Parent;
            while (parent is IConversionOperation or IParenthesizedOperation) { at = parent; parent = parent.Parent; }
            bool escapes = parent switch
            {
                IArgumentOperation => true,
                IReturnOperation => true,
                ISimpleAssignmentOperation a => a.Value == at,
                IVariableInitializerOperation => true,
                IArrayInitializerOperation => true,
                _ => false,
            };
            if (escapes) escaped.TryAdd(member, true);
        }, OperationKind.FieldReference, OperationKind.PropertyReference);
        operations.OnCompilationEnd(end =>
        {
            var sites = new List<InsertSite>(inserts);
            sites.Sort((a, b) =>
            {
                int c = string.CompareOrdinal(a.Location.SourceTree?.FilePath, b.Location.SourceTree?.FilePath);
                return c != 0 ? c : a.Location.SourceSpan.Start.CompareTo(b.Location.SourceSpan.Start);
            });
            foreach (var s in sites)
                if (!removed.ContainsKey(s.Member) && !escaped.ContainsKey(s.Member))
                    end.ReportDiagnostic(Diagnostic.Create(HmmRules.NotifierNeverRemoved, s.Location));
        });
    }

    /// <summary>The field or property a notifier lives in (of any instance: a per-object notifier is one member).</summary>
    private static ISymbol? MemberOf(IOperation? op) => Unwrap(op) switch
    {
        IFieldReferenceOperation f => f.Field.OriginalDefinition,
        IPropertyReferenceOperation { Property.IsIndexer: false } p => p.Property.OriginalDefinition,
        _ => null,
    };

    private static IOperation Root(IOperation op)
    {
        while (op.Parent != null) op = op.Parent;
        return op;
    }

    /// <summary>A local notifier inserted in this method, never removed here and never handed anywhere else.</summary>
    private static bool NeverRemovedLocal(IInvocationOperation insert, ILocalSymbol local, INamedTypeSymbol notifierType)
    {
        foreach (var op in Root(insert).Descendants())
        {
            if (op is not ILocalReferenceOperation lr || !SymbolEqualityComparer.Default.Equals(lr.Local, local)) continue;
            IOperation at = lr;
            var parent = lr.Parent;
            while (parent is IConversionOperation or IParenthesizedOperation) { at = parent; parent = parent.Parent; }
            switch (parent)
            {
                case IInvocationOperation inv when inv.Instance == at:
                    if (inv.TargetMethod.Name == "Remove" && SymbolEqualityComparer.Default.Equals(inv.TargetMethod.ContainingType, notifierType)) return false;
                    break;
                case IMemberReferenceOperation mr when mr.Instance == at:
                    break;
                case ISimpleAssignmentOperation a when a.Target == at:
                    break;
                default:
                    return false;   // escapes: someone else may remove it
            }
        }
        return true;
    }

    // ---- MIG-R08 ---------------------------------------------------------------------------------

    /// <summary>Setup inside migrate_to_ram on a MigrateVma built here that never mentions FaultPage.</summary>
    private static void CheckFaultPage(OperationSite context, IInvocationOperation setup, ContractSet contracts)
    {
        if (context.ContainingSymbol is not IMethodSymbol method || (contracts.For(method).Context & CallbackContext.MigrateToRam) == 0) return;
        if (setup.Arguments.Length != 1 || Unwrap(setup.Arguments[0].Value) is not ILocalReferenceOperation arg) return;
        bool created = false;
        foreach (var op in Root(setup).Descendants())
        {
            switch (op)
            {
                case IVariableDeclaratorOperation d when SymbolEqualityComparer.Default.Equals(d.Symbol, arg.Local):
                    if (d.Initializer == null) break;
                    if (Unwrap(d.Initializer.Value) is not IObjectCreationOperation create) return;
                    created = true;
                    if (MentionsFaultPage(create.Initializer)) return;
                    break;
                case ISimpleAssignmentOperation a when Unwrap(a.Target) is ILocalReferenceOperation t && SymbolEqualityComparer.Default.Equals(t.Local, arg.Local):
                    if (Unwrap(a.Value) is not IObjectCreationOperation c2) return;
                    created = true;
                    if (MentionsFaultPage(c2.Initializer)) return;
                    break;
                case ISimpleAssignmentOperation { Target: IPropertyReferenceOperation { Property.Name: "FaultPage" } p }
                    when Unwrap(p.Instance) is ILocalReferenceOperation owner && SymbolEqualityComparer.Default.Equals(owner.Local, arg.Local):
                    return;   // set (or deliberately cleared) in the body
            }
        }
        if (created) context.ReportDiagnostic(Diagnostic.Create(HmmRules.MigrateToRamWithoutFaultPage, setup.Syntax.GetLocation()));
    }

    private static bool MentionsFaultPage(IObjectOrCollectionInitializerOperation? init)
    {
        if (init == null) return false;
        foreach (var i in init.Initializers)
            if (i is ISimpleAssignmentOperation { Target: IPropertyReferenceOperation { Property.Name: "FaultPage" } }) return true;
        return false;
    }
}
