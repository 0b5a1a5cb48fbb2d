using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;

using Hmm.Analyzers.Rules;

namespace Hmm.Analyzers.Flow;

// MethodFlow, checks at returns and at the exits of the body (callback results, unreleased locks, leaked references).
internal sealed partial class MethodFlow
{
    private void CheckReturn(FlowState state, IOperation value)
    {
        if (!_report || (_facts.Context & CallbackContext.Invalidate) == 0) return;
        // A forwarder (ops class → the driver's method of the same shape): the target is checked itself.
        if (Unwrap(value) is IInvocationOperation fwd && _contracts.For(fwd.TargetMethod).Context != CallbackContext.None) return;
        bool isFalse = value.ConstantValue is { HasValue: true, Value: false };
        if (isFalse && !state.Has(FlowFlags.KnownNonBlockable)) Report(HmmRules.FalseOnBlockable, value.Syntax.GetLocation());
        // Skipping the driver's own migration events is allowed (HMM-R19): such a path filtered on Event and Owner.
        if (!isFalse && (_facts.Context & CallbackContext.HandWrittenInvalidate) != 0 && !state.Has(FlowFlags.SeqSet) && !state.Has(FlowFlags.OwnerFiltered))
            Report(HmmRules.SetSeqMissing, value.Syntax.GetLocation());
    }

    private void CheckExit(FlowState state)
    {
        foreach (var l in state.Locks)
        {
            if (l.FromEntry || DeclaresAcquire(l.Key)) continue;
            Report(HmmRules.LockNotReleased, l.Site, Display(l.Key));
        }
        if (_self.RefAcquireKind != null) return;   // a wrapper that hands its reference to the caller
        foreach (var r in state.Refs)
        {
            if (r.Kind == RemovedNotifier) continue;
            if (r.Escapes.IsEmpty) Report(HmmRules.ForReference(r.Kind), r.Site, r.Kind);
            else _facts.PendingLeaks.Add(r);
        }
    }

    private bool DeclaresAcquire(string key)
    {
        foreach (var e in _self.LockEffects)
            if (e.Kind is LockEffectKind.Acquire or LockEffectKind.AcquireShared && Resolve(_contracts, e.Target, _facts.Method, null) == key) return true;
        return false;
    }

    private void Report(DiagnosticDescriptor rule, Location loc, params object[] args)
    {
        if (!_report || !_reported.Add((rule.Id, loc.SourceSpan.Start))) return;
        _facts.Diagnostics.Add(Diagnostic.Create(rule, loc, args));
    }

}
