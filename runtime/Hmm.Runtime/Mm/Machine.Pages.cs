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
