using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using Hmm.Dsl;
using Hmm.Runtime.Mm;

namespace Hmm.Runtime.Notifiers;

/// <summary>Which callbacks of an <see cref="MmuNotifierOps"/> a driver supplied (the non-NULL members of the kernel's ops table).</summary>
[Flags]
public enum MmuNotifierCallbacks
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary><c>release</c>.</summary>
    Release = 1 << 0,
    /// <summary><c>invalidate_range_start</c>.</summary>
    InvalidateRangeStart = 1 << 1,
    /// <summary><c>invalidate_range_end</c>.</summary>
    InvalidateRangeEnd = 1 << 2,
    /// <summary><c>arch_invalidate_secondary_tlbs</c>.</summary>
    ArchInvalidateSecondaryTlbs = 1 << 3,
    /// <summary><c>clear_flush_young</c>.</summary>
    ClearFlushYoung = 1 << 4,
    /// <summary><c>clear_young</c>.</summary>
    ClearYoung = 1 << 5,
    /// <summary><c>test_young</c>.</summary>
    TestYoung = 1 << 6,
    /// <summary><c>alloc_notifier</c>.</summary>
    AllocNotifier = 1 << 7,
    /// <summary><c>free_notifier</c>.</summary>
    FreeNotifier = 1 << 8,
}

/// <summary>
/// Simulates <c>struct mmu_notifier_ops</c>, the callbacks of a whole-mm
/// <see cref="MmuNotifier"/> (reference/kernel-hmm.md A.6 "legacy/global" notifiers). A driver
/// derives from it and overrides the callbacks it implements; a callback it does not override
/// counts as NULL in the kernel's table (<see cref="Implemented"/>), which matters for the
/// rules the core checks: a subscriber implements either
/// <see cref="ArchInvalidateSecondaryTlbs"/> or the start/end pair, not both (-EINVAL at
/// register), and a start that can fail must not come with an end (NTF-R03). The ops object's
/// identity is what <see cref="MmuNotifier.Get"/> matches on, like the kernel's ops pointer:
/// keep one instance per driver (a static).
/// </summary>
[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicMethods)]
public abstract class MmuNotifierOps
{
    private static readonly ConcurrentDictionary<Type, MmuNotifierCallbacks> s_implemented = new();

    /// <summary>Records which callbacks the concrete type overrides.</summary>
    protected MmuNotifierOps()
    {
        Type type = GetType();
        if (!s_implemented.TryGetValue(type, out MmuNotifierCallbacks implemented))
            implemented = s_implemented.GetOrAdd(type, Discover(type));
        Implemented = implemented;
    }

    /// <summary>The callbacks this ops type supplies.</summary>
    public MmuNotifierCallbacks Implemented { get; }

    /// <summary>
    /// <c>release</c>: the mm is being torn down (exit_mmap, before its pages are freed) or
    /// this notifier is being unregistered while the mm is still live. Runs at most once per
    /// registration; the driver must stop using the mm's pages and establish no new device
    /// mapping. After it returns no other callback of this registration runs. Runs inside the
    /// notifier SRCU read section: it may call <see cref="MmuNotifier.Put"/> (the kernel
    /// documents that), but never <see cref="MmuNotifier.Unregister"/> nor
    /// <see cref="MmuNotifier.Synchronize"/> (they wait for the section it runs in).
    /// </summary>
    [NotifierCallback]
    [NotifierLifetime(NotifierLifetimeRole.Release)]
    public virtual void Release(MmuNotifier subscription, AddressSpace mm) { }

    /// <summary>
    /// <c>invalidate_range_start</c>: the CPU entries of <paramref name="range"/> are about to
    /// change; the device must stop using them until the matching end. May sleep only when
    /// <see cref="NotifierRange.Blockable"/>; otherwise it may return <see cref="Errno.EAGAIN"/>
    /// (the OOM reaper then skips the range). A type that may fail must not override
    /// <see cref="InvalidateRangeEnd"/>: the core cannot tell which starts failed.
    /// </summary>
    [NotifierCallback(NonBlockableRange = true)]
    public virtual Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range) => Errno.Ok;

    /// <summary><c>invalidate_range_end</c>: the entries changed (pages may now be freed); the device may map again.</summary>
    [NotifierCallback(NonBlockableRange = true)]
    public virtual void InvalidateRangeEnd(MmuNotifier subscription, in NotifierRange range) { }

    /// <summary>
    /// <c>arch_invalidate_secondary_tlbs</c>: flush the device's TLB (an IOMMU sharing the CPU
    /// page table) for [<paramref name="start"/>, <paramref name="end"/>). Atomic context: must not sleep.
    /// </summary>
    [NotifierCallback]
    [AtomicContext]
    public virtual void ArchInvalidateSecondaryTlbs(MmuNotifier subscription, AddressSpace mm, ulong start, ulong end) { }

    /// <summary><c>clear_flush_young</c>: test and clear the device's accessed bits in the range, flushing its TLB; true when any was set.</summary>
    [NotifierCallback]
    public virtual bool ClearFlushYoung(MmuNotifier subscription, AddressSpace mm, ulong start, ulong end) => false;

    /// <summary><c>clear_young</c>: like <see cref="ClearFlushYoung"/> without the flush.</summary>
    [NotifierCallback]
    public virtual bool ClearYoung(MmuNotifier subscription, AddressSpace mm, ulong start, ulong end) => false;

    /// <summary><c>test_young</c>: whether the device accessed <paramref name="address"/> recently (bits unchanged).</summary>
    [NotifierCallback]
    public virtual bool TestYoung(MmuNotifier subscription, AddressSpace mm, ulong address) => false;

    /// <summary>
    /// <c>alloc_notifier</c>, for <see cref="MmuNotifier.Get"/>: returns a new, unregistered
    /// notifier (usually a driver subclass of <see cref="MmuNotifier"/>) built with these ops, or
    /// an error. Called with the mmap lock held for write: it must not take it.
    /// </summary>
    [NotifierLifetime(NotifierLifetimeRole.Alloc)]
    public virtual Errno AllocNotifier(AddressSpace mm, out MmuNotifier? subscription)
    {
        subscription = null;
        return Errno.EINVAL;
    }

    /// <summary>
    /// <c>free_notifier</c>: frees a notifier obtained by <see cref="MmuNotifier.Get"/> once its
    /// last <see cref="MmuNotifier.Put"/> went through an SRCU grace period. Runs later on the
    /// SRCU callback worker, never in the caller of Put; may not sleep in the kernel (an RCU
    /// callback). This driver code must still be loaded then: call
    /// <see cref="MmuNotifier.Synchronize"/> before unloading.
    /// </summary>
    [NotifierLifetime(NotifierLifetimeRole.Free)]
    public virtual void FreeNotifier(MmuNotifier subscription) { }

    private static MmuNotifierCallbacks Discover([DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicMethods)] Type type)
    {
        var found = MmuNotifierCallbacks.None;
        foreach (MethodInfo m in type.GetMethods(BindingFlags.Instance | BindingFlags.Public))
        {
            if (m.DeclaringType == typeof(MmuNotifierOps) || m.GetBaseDefinition().DeclaringType != typeof(MmuNotifierOps)) continue;
            found |= m.Name switch
            {
                nameof(Release) => MmuNotifierCallbacks.Release,
                nameof(InvalidateRangeStart) => MmuNotifierCallbacks.InvalidateRangeStart,
                nameof(InvalidateRangeEnd) => MmuNotifierCallbacks.InvalidateRangeEnd,
                nameof(ArchInvalidateSecondaryTlbs) => MmuNotifierCallbacks.ArchInvalidateSecondaryTlbs,
                nameof(ClearFlushYoung) => MmuNotifierCallbacks.ClearFlushYoung,
                nameof(ClearYoung) => MmuNotifierCallbacks.ClearYoung,
                nameof(TestYoung) => MmuNotifierCallbacks.TestYoung,
                nameof(AllocNotifier) => MmuNotifierCallbacks.AllocNotifier,
                nameof(FreeNotifier) => MmuNotifierCallbacks.FreeNotifier,
                _ => MmuNotifierCallbacks.None,
            };
        }
        return found;
    }
}
