using Hmm.Dsl;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Scheduling;

namespace Hmm.Runtime.Notifiers;

/// <summary>
/// Simulates <c>struct mmu_notifier</c>: a whole-mm subscription whose <see cref="Ops"/> are
/// called around every CPU page-table change of the mm (the same ranges, events and blockable
/// flag the interval notifiers see), at exit (<c>release</c>), and for the young-bit queries.
/// Two lifetimes, as in mm/mmu_notifier.c: <see cref="Register"/> / <see cref="Unregister"/>
/// (the driver owns the object; unregister is synchronous), or the reference-counted
/// <see cref="Get"/> / <see cref="Put"/> (one notifier per ops and mm, freed through
/// <see cref="MmuNotifierOps.FreeNotifier"/> after an SRCU grace period; a module calls
/// <see cref="Synchronize"/> before it unloads). Drivers usually derive from it to carry their
/// per-mm state (the kernel's container_of).
/// </summary>
/// <remarks>
/// Differences from Linux: the SRCU domain is per <see cref="Machine"/> (one simulated kernel),
/// not global, so <see cref="Synchronize"/> takes the machine; mm_count (mmgrab/mmdrop) is not
/// modelled, so a registration does not pin the mm_struct beyond the simulator's garbage
/// collector; mm_take_all_locks is not modelled, so register never returns -EINTR (the simulator
/// has no signals); -ENOMEM for the subscriptions allocation is the fault-injection site
/// <see cref="FaultSite.SystemPage"/>; misuse the kernel WARNs about or corrupts memory on
/// (a double register, a put without a get, unregister from a callback) throws
/// <see cref="KernelBugException"/>.
/// </remarks>
public class MmuNotifier
{
    private const int Unregistered = 0;
    private const int Registered = 1;
    private const int FreeQueued = 2;
    private const int Freed = 3;

    private int _state;

    // hlist links of mm->notifier_subscriptions->list, changed under the subscription spinlock.
    // Removal keeps Next (hlist_del_init_rcu): an SRCU reader standing on the removed node
    // still walks on to the rest of the list.
    internal MmuNotifier? Next;
    internal MmuNotifier? Prev;
    internal bool Hashed;

    /// <summary>Set when release began: no callback starts for this registration afterwards.</summary>
    internal int ReleaseState;

    internal bool ReleaseStarted => Volatile.Read(ref ReleaseState) != 0;

    /// <summary><c>users</c>: references taken by <see cref="Get"/> (1 after <see cref="Register"/>); under the subscription spinlock.</summary>
    internal uint UsersCount;

    /// <summary>Creates an unregistered notifier calling <paramref name="ops"/>.</summary>
    public MmuNotifier(MmuNotifierOps ops)
    {
        ArgumentNullException.ThrowIfNull(ops);
        Ops = ops;
    }

    /// <summary>The callbacks (<c>ops</c>); <see cref="Get"/> matches notifiers by this identity.</summary>
    public MmuNotifierOps Ops { get; }

    /// <summary>The mm this notifier was registered on (kept after unregister/free, as the kernel's pointer is).</summary>
    public AddressSpace? Mm { get; private set; }

    /// <summary>The reference count (<c>users</c>); 0 once the last put went through.</summary>
    public int Users
    {
        get
        {
            if (_subscriptions is not { } s) return 0;
            return (int)s.ReadUsers(this);
        }
    }

    /// <summary>Whether the notifier is on its mm's subscription list (hlist_unhashed is false).</summary>
    public bool IsRegistered => _subscriptions is { } s && s.IsHashed(this);

    /// <summary>Whether the last put's deferred free ran (<see cref="MmuNotifierOps.FreeNotifier"/> was called).</summary>
    public bool IsFreed => Volatile.Read(ref _state) == Freed;

    private MmuNotifierSubscriptions? _subscriptions;

    internal MmuNotifierSubscriptions? Subscriptions => _subscriptions;

    /// <summary>
    /// mmu_notifier_register: takes <paramref name="mm"/>'s mmap lock for write and links the
    /// notifier at the head of the mm's subscription list with one user. The caller must hold
    /// an mm reference (mm_users &gt; 0, else the kernel BUGs) and no mm lock (NTF-R02).
    /// Returns <see cref="Errno.EINVAL"/> when the ops implement both
    /// <c>arch_invalidate_secondary_tlbs</c> and start/end, <see cref="Errno.ENOMEM"/> when the
    /// first registration cannot allocate the mm's subscriptions. May sleep.
    /// </summary>
    [MayBlock]
    [Excludes("mm.MmapLock")]
    public Errno Register(AddressSpace mm)
    {
        ArgumentNullException.ThrowIfNull(mm);
        if (mm.MmapLock.IsHeldByCurrentThread)
            throw new KernelBugException("NTF-R02", $"mm {mm.Id}: mmu_notifier_register called with mmap_lock held; it takes mmap_lock itself (use RegisterLocked under the write lock)");
        LockValidator.MightSleep("mmu_notifier_register");
        mm.MmapLock.WriteLock();
        try
        {
            return RegisterCore(mm);
        }
        finally
        {
            mm.MmapLock.WriteUnlock();
        }
    }

    /// <summary>__mmu_notifier_register: <see cref="Register"/> for a caller holding the mmap lock for write.</summary>
    [Requires("mm.MmapLock")]
    public Errno RegisterLocked(AddressSpace mm)
    {
        ArgumentNullException.ThrowIfNull(mm);
        AssertWriteLocked(mm, "__mmu_notifier_register");
        return RegisterCore(mm);
    }

    private Errno RegisterCore(AddressSpace mm)
    {
        if (mm.Users <= 0)
            throw new KernelBugException("NTF-R02", $"mm {mm.Id}: mmu_notifier_register on an mm without users (the caller must hold an mm reference; release may already have run)");
        var implemented = Ops.Implemented;
        if ((implemented & MmuNotifierCallbacks.ArchInvalidateSecondaryTlbs) != 0
            && (implemented & (MmuNotifierCallbacks.InvalidateRangeStart | MmuNotifierCallbacks.InvalidateRangeEnd)) != 0)
            return Errno.EINVAL;
        if (Interlocked.CompareExchange(ref _state, Registered, Unregistered) != Unregistered)
            throw new KernelBugException("NTF-R05", $"mmu_notifier registered again while registered or after its free ({this})");
        MmuNotifierSubscriptions subscriptions;
        if (mm.NotifierHook is null && FaultInjection.Fails(FaultSite.SystemPage))
        {
            Volatile.Write(ref _state, Unregistered);
            return Errno.ENOMEM;
        }
        try
        {
            subscriptions = MmuNotifierSubscriptions.GetOrInstall(mm);
        }
        catch
        {
            Volatile.Write(ref _state, Unregistered);
            throw;
        }
        Mm = mm;
        _subscriptions = subscriptions;
        Volatile.Write(ref ReleaseState, 0);
        subscriptions.AddSubscriber(this);
        return Errno.Ok;
    }

    /// <summary>
    /// mmu_notifier_unregister: if the notifier is still on the list (the mm did not exit yet),
    /// runs its <c>release</c> and unlinks it; then waits for an SRCU grace period, so on return
    /// no callback of this notifier is running or will run. Synchronous; must not be called from
    /// any notifier callback (it would wait for itself, NTF-R04). Not for notifiers obtained by
    /// <see cref="Get"/> (use <see cref="Put"/>).
    /// </summary>
    [MayBlock]
    [WaitsForCallbacks]
    public void Unregister(AddressSpace mm)
    {
        ArgumentNullException.ThrowIfNull(mm);
        if (NotifierSrcu.InReadSection || MmuNotifierSubscriptions.InCallback)
            throw new KernelBugException("NTF-R04", "mmu_notifier_unregister called from inside a notifier callback; it waits for the SRCU section the callback runs in");
        if (Volatile.Read(ref _state) != Registered || _subscriptions is null)
            throw new KernelBugException("NTF-R05", $"mmu_notifier_unregister of a notifier that is not registered ({this})");
        if (!ReferenceEquals(mm, Mm))
            throw new ArgumentException("mmu_notifier_unregister with another mm than the one registered on", nameof(mm));
        LockValidator.MightSleep("mmu_notifier_unregister");
        MmuNotifierSubscriptions subscriptions = _subscriptions;
        NotifierSrcu srcu = NotifierSrcu.Of(mm.Machine);
        if (subscriptions.IsHashed(this))
        {
            // Still hashed: exit has not released it. Release runs now, inside the SRCU section,
            // and exit_mmap's own release (if it races) waits for it before freeing pages.
            int token = srcu.ReadLock();
            try
            {
                subscriptions.InvokeRelease(this);
            }
            finally
            {
                srcu.ReadUnlock(token);
            }
            subscriptions.RemoveSubscriber(this);
        }
        srcu.Synchronize();
        Volatile.Write(ref _state, Unregistered);
    }

    /// <summary>
    /// mmu_notifier_get: under the mmap lock (taken for write here), finds the notifier of
    /// <paramref name="ops"/> on <paramref name="mm"/> and takes a user reference, or allocates
    /// one with <see cref="MmuNotifierOps.AllocNotifier"/> and registers it (freeing it with
    /// <see cref="MmuNotifierOps.FreeNotifier"/> if registration fails). Returns
    /// <see cref="Errno.Ok"/> with <paramref name="subscription"/> set, or the error of the
    /// allocation or registration; <see cref="Errno.EOVERFLOW"/> when the count would wrap.
    /// Every success pairs with one <see cref="Put"/>. May sleep.
    /// </summary>
    [MayBlock]
    [Excludes("mm.MmapLock")]
    [AcquiresReference("mmu-notifier", "subscription", When = AcquiredWhen.ReturnsOk)]
    public static Errno Get(MmuNotifierOps ops, AddressSpace mm, out MmuNotifier? subscription)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(mm);
        if (mm.MmapLock.IsHeldByCurrentThread)
            throw new KernelBugException("NTF-R02", $"mm {mm.Id}: mmu_notifier_get called with mmap_lock held; it takes mmap_lock itself (use GetLocked)");
        LockValidator.MightSleep("mmu_notifier_get");
        mm.MmapLock.WriteLock();
        try
        {
            return GetCore(ops, mm, out subscription);
        }
        finally
        {
            mm.MmapLock.WriteUnlock();
        }
    }

    /// <summary>mmu_notifier_get_locked: <see cref="Get"/> for a caller holding the mmap lock for write.</summary>
    [Requires("mm.MmapLock")]
    [AcquiresReference("mmu-notifier", "subscription", When = AcquiredWhen.ReturnsOk)]
    public static Errno GetLocked(MmuNotifierOps ops, AddressSpace mm, out MmuNotifier? subscription)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(mm);
        AssertWriteLocked(mm, "mmu_notifier_get_locked");
        return GetCore(ops, mm, out subscription);
    }

    private static Errno GetCore(MmuNotifierOps ops, AddressSpace mm, out MmuNotifier? subscription)
    {
        subscription = null;
        if (mm.NotifierHook is MmuNotifierSubscriptions existing)
        {
            Errno found = existing.FindGet(ops, out subscription);
            if (found != Errno.ENOENT) return found;
        }
        Errno allocated = ops.AllocNotifier(mm, out MmuNotifier? fresh);
        if (allocated != Errno.Ok) return allocated;
        if (fresh is null || !ReferenceEquals(fresh.Ops, ops))
            throw new KernelBugException("NTF-R05", "alloc_notifier returned no notifier, or one built with other ops (the kernel sets subscription->ops to the ops passed to mmu_notifier_get)");
        Errno registered = fresh.RegisterCore(mm);
        if (registered != Errno.Ok)
        {
            ops.FreeNotifier(fresh);
            Volatile.Write(ref fresh._state, Freed);
            return registered;
        }
        subscription = fresh;
        return Errno.Ok;
    }

    /// <summary>
    /// mmu_notifier_put: drops a user reference. The last one unlinks the notifier (no callback
    /// starts for it afterwards) and queues its free: <see cref="MmuNotifierOps.FreeNotifier"/>
    /// runs after an SRCU grace period on another thread, never inside this call. Never sleeps;
    /// allowed inside <see cref="MmuNotifierOps.Release"/> (the kernel documents that). A put
    /// without a matching get, or after the last put, is NTF-R05.
    /// </summary>
    [ReleasesReference("mmu-notifier", "this")]
    public void Put()
    {
        MmuNotifierSubscriptions subscriptions = _subscriptions
            ?? throw new KernelBugException("NTF-R05", $"mmu_notifier_put on a notifier that was never registered ({this})");
        if (!subscriptions.PutUser(this)) return;
        if (Interlocked.CompareExchange(ref _state, FreeQueued, Registered) != Registered)
            throw new KernelBugException("NTF-R05", $"mmu_notifier_put dropped the last user of a notifier that is not registered ({this})");
        NotifierSrcu.Of(subscriptions.Mm.Machine).Call(static n => ((MmuNotifier)n).FreeAfterGracePeriod(), this);
    }

    /// <summary>mmu_notifier_free_rcu: the SRCU callback of the last <see cref="Put"/>.</summary>
    private void FreeAfterGracePeriod()
    {
        if (Interlocked.CompareExchange(ref _state, Freed, FreeQueued) != FreeQueued)
            throw new KernelBugException("NTF-R05", $"mmu_notifier freed twice ({this})");
        Ops.FreeNotifier(this);
    }

    /// <summary>
    /// mmu_notifier_synchronize: waits until every free queued by a last <see cref="Put"/> on
    /// <paramref name="machine"/> has run (srcu_barrier). A module that used <see cref="Get"/>
    /// calls it on its unload path; after it returns no <see cref="MmuNotifierOps.FreeNotifier"/>
    /// of it can still run (NTF-R02). Sleeps; never from a notifier callback (NTF-R04).
    /// </summary>
    [MayBlock]
    [WaitsForCallbacks]
    [DrainsDeferredFrees("mmu-notifier")]
    public static void Synchronize(Machine machine)
    {
        ArgumentNullException.ThrowIfNull(machine);
        NotifierSrcu.Of(machine).Barrier();
    }

    /// <summary>Frees queued by a last put on <paramref name="machine"/> that have not run yet (tests).</summary>
    public static int PendingFrees(Machine machine)
    {
        ArgumentNullException.ThrowIfNull(machine);
        return NotifierSrcu.Existing(machine)?.PendingCallbacks ?? 0;
    }

    internal bool IsLive => Volatile.Read(ref _state) == Registered;

    private static void AssertWriteLocked(AddressSpace mm, string what)
    {
        if (!mm.MmapLock.IsWriteLocked || !mm.MmapLock.IsHeldByCurrentThread)
            throw new KernelBugException("NTF-R02", $"mm {mm.Id}: {what} called without holding mmap_lock for write");
    }

    /// <inheritdoc/>
    public override string ToString() => $"MmuNotifier({Ops.GetType().Name}) on mm {Mm?.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-"}";
}
