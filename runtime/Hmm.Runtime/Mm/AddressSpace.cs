using System.Threading;
using Hmm.Runtime.Locking;

namespace Hmm.Runtime.Mm;

/// <summary>
/// Simulates <c>struct mm_struct</c>: one process's address space — its VMAs, CPU page tables,
/// the mmap lock and the MMU-notifier subscriptions hanging off it.
/// </summary>
public sealed partial class AddressSpace
{
    private IMmuNotifierHook? _notifierHook;
    private int _users = 1;

    internal AddressSpace(Machine machine, int id)
    {
        Machine = machine;
        Id = id;
        MmapLock = new RwSemaphore("mm.MmapLock");
    }

    /// <summary>The machine this address space lives on.</summary>
    public Machine Machine { get; }

    /// <summary>A small integer naming this mm in messages.</summary>
    public int Id { get; }

    /// <summary>Simulates <c>mm->mmap_lock</c>: held for write by mmap/munmap/mprotect/…, for read by faults and by drivers around hmm_range_fault and migrate_vma.</summary>
    public RwSemaphore MmapLock { get; }

    /// <summary><c>mm_users</c>: 0 once the owning process has exited (mmget_not_zero fails).</summary>
    public int Users => Volatile.Read(ref _users);

    /// <summary>mmget_not_zero: pins the mm's users so it cannot be torn down (HMM-R13).</summary>
    public bool TryGet()
    {
        int users = Volatile.Read(ref _users);
        while (users > 0)
        {
            int seen = Interlocked.CompareExchange(ref _users, users + 1, users);
            if (seen == users) return true;
            users = seen;
        }
        return false;
    }

    /// <summary>mmput: drops a reference taken by <see cref="TryGet"/>.</summary>
    public void Put()
    {
        if (Interlocked.Decrement(ref _users) < 0)
            throw new KernelBugException("MM-R01", $"mm {Id}: mmput without a matching mmget");
    }

    /// <summary>The notifier subscriptions (mm->notifier_subscriptions), installed on first registration.</summary>
    internal IMmuNotifierHook? NotifierHook => Volatile.Read(ref _notifierHook);

    /// <summary>Installs <paramref name="hook"/> unless another thread did first; returns the installed one.</summary>
    internal IMmuNotifierHook InstallNotifierHook(IMmuNotifierHook hook)
        => Interlocked.CompareExchange(ref _notifierHook, hook, null) ?? hook;
}
