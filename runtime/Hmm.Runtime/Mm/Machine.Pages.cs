using System.Runtime.CompilerServices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

public sealed unsafe partial class Machine
{
    private readonly WaitQueue _pageLockWaiters = new("folio_wait_table");
    private IDeviceMemoryHook? _deviceMemory;

    /// <summary>The device-memory layer, once device memory was hot-plugged.</summary>
    internal IDeviceMemoryHook? DeviceMemory => Volatile.Read(ref _deviceMemory);

    private long _lineageGeneration;

    /// <summary>
    /// Changes whenever a VMA is linked to or unlinked from an anon_vma lineage (fork, a VMA
    /// split or merge, mremap, unmap). Rmap walks do not need it — they hold the anon_vma rwsem —
    /// but migrate_vma_finalize's range fast path (<see cref="MigrationEntries.RestoreSoleMappings"/>)
    /// does: it restores entries only where collect wrote them, which is right only while no fork
    /// copied one into a child and no split moved one to another VMA since collect. The kernel has
    /// no such shortcut; it is ours, and this counter is what keeps it exact.
    /// </summary>
    internal long RmapGeneration => Volatile.Read(ref _lineageGeneration);

    internal void BumpRmapGeneration() => Interlocked.Increment(ref _lineageGeneration);

    internal IDeviceMemoryHook InstallDeviceMemory(IDeviceMemoryHook hook)
        => Interlocked.CompareExchange(ref _deviceMemory, hook, null) ?? hook;

    /// <summary>
    /// migrate_device_coherent_folio, provided by the migration layer (installed at module load
    /// so the mm layer does not depend on the layer above it): migrates one device-coherent
    /// folio to system memory before a long-term pin; false when it could not.
    /// </summary>
    internal static Func<Machine, ulong, bool>? CoherentFolioMigration { get; set; }

    /// <summary>The bytes of any page a device can reach: system RAM or device memory (private included).</summary>
    internal byte* DmaAddress(ulong pfn)
    {
        if (Memory.Contains(pfn)) return Memory.PageAddress(pfn);
        if (DeviceMemory is { } dev) return dev.DeviceAddress(pfn);
        throw new KernelBugException("PAGE-R02", $"pfn 0x{pfn:x} is not memory");
    }

    /// <summary>
    /// folio_put for a batch of folios (release_pages / folios_put): one reference dropped on each
    /// of <paramref name="heads"/>; the system folios whose last reference went are freed to the
    /// allocator together (one zone-lock hold per 512), any other (device, hugetlb) as
    /// <see cref="PutPage"/> frees it. <paramref name="scratch"/> holds at least
    /// <c>heads.Length</c> pfns and is overwritten.
    /// </summary>
    internal void PutPages(ReadOnlySpan<ulong> heads, Span<ulong> scratch)
    {
        int n = 0;
        foreach (ulong head in heads)
        {
            ref PageFlags flags = ref Frames.Flags(head);
            if ((flags & PageFlags.Reserved) != 0) continue;
            int left = Interlocked.Decrement(ref Frames.RefCount(head));
            if (left > 0) continue;
            if (left < 0) throw new KernelBugException("PAGE-R01", $"refcount underflow on pfn 0x{head:x}");
            if ((flags & (PageFlags.Device | PageFlags.HugeTlb)) != 0)
            {
                FreeFolio(head);
                continue;
            }
            // FreeFolio's reset of a system folio (keep the two in step), the allocator's part batched.
            flags &= ~(PageFlags.Anon | PageFlags.File | PageFlags.Dirty | PageFlags.Lru | PageFlags.AnonExclusive | PageFlags.Locked);
            Frames.Owner(head) = 0;
            scratch[n++] = head;
        }
        Allocator.FreeBatch(scratch.Slice(0, n));
    }

    /// <summary>is_zero_pfn / is_huge_zero_pfn: whether <paramref name="pfn"/> is the shared zero page (as <c>HmmRange.Fault</c> reports a read-faulted hole).</summary>
    public static bool IsZeroPfn(ulong pfn) => pfn == ZeroPfn || pfn == HugeZeroPfn;

    /// <summary>Whether <paramref name="pfn"/> is ZONE_DEVICE memory.</summary>
    internal bool IsDevicePage(ulong pfn) => (Frames.Flags(pfn) & PageFlags.Device) != 0;

    /// <summary>folio_trylock.</summary>
    internal bool TryLockPage(ulong head)
    {
        ref PageFlags flags = ref Frames.Flags(head);
        while (true)
        {
            var seen = flags;
            if ((seen & PageFlags.Locked) != 0) return false;
            if (Interlocked.CompareExchange(ref Unsafe.As<PageFlags, uint>(ref flags), (uint)(seen | PageFlags.Locked), (uint)seen) == (uint)seen)
                return true;
        }
    }

    /// <summary>folio_lock: sleeps until the page lock is free, then takes it.</summary>
    internal void LockPage(ulong head)
    {
        if (TryLockPage(head)) return;
        _pageLockWaiters.WaitEvent((this, head), static s => s.Item1.TryLockPage(s.head));
    }

    /// <summary>folio_unlock: releases the page lock and wakes waiters.</summary>
    internal void UnlockPage(ulong head)
    {
        ref PageFlags flags = ref Frames.Flags(head);
        while (true)
        {
            var seen = flags;
            if ((seen & PageFlags.Locked) == 0) throw new KernelBugException("PAGE-R03", $"unlocking pfn 0x{head:x} which is not locked");
            if (Interlocked.CompareExchange(ref Unsafe.As<PageFlags, uint>(ref flags), (uint)(seen & ~PageFlags.Locked), (uint)seen) == (uint)seen)
                break;
        }
        if (_pageLockWaiters.HasWaiters) _pageLockWaiters.WakeUpAll();
    }

    /// <summary>
    /// folio_wait_locked / migration_entry_wait_on_locked: sleeps until the page is unlocked (a
    /// CPU fault on a migration entry, or on a device page someone else holds). The waiter holds
    /// no reference, as in the kernel: if the page's device memory is unplugged meanwhile (its
    /// section goes offline), the wait ends and the fault retries on whatever the entry is now.
    /// </summary>
    internal void WaitPageUnlocked(ulong head)
    {
        if (IsUnlockedOrGone(this, head)) return;
        _pageLockWaiters.WaitEvent((this, head), static s => IsUnlockedOrGone(s.Item1, s.head));
    }

    private static bool IsUnlockedOrGone(Machine machine, ulong head)
        => !machine.Frames.TryReadFlags(head, out var flags) || (flags & PageFlags.Locked) == 0;
}
