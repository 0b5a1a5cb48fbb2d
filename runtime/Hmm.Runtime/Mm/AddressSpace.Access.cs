using Hmm.Runtime.Scheduling;
using System.Runtime.CompilerServices;
using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

public sealed partial class AddressSpace
{
    private const int MaxFaultRetries = 1000;

    /// <summary>
    /// Outside exploration a livelock also needs this much wall time without progress: on a fast
    /// host 1000 retries take microseconds, less than another thread may legitimately hold the
    /// page (a migration copying a run, a device-exclusive make), and a CPU that refaults is not
    /// stuck while that holder can still finish. Under exploration the count alone decides (a
    /// schedule must not depend on wall time; the scheduler bounds steps).
    /// </summary>
    private static readonly long LivelockTicks = System.Diagnostics.Stopwatch.Frequency;

    /// <summary>
    /// The CPU's view of one access: walks the page table like the MMU and, on a miss or a
    /// permission fault, runs the fault handler and retries, as hardware re-executes the faulting
    /// instruction. Returns the host address of the byte at <paramref name="address"/> with a TLB
    /// section entered (<paramref name="tlb"/>): the caller performs its load or store and then
    /// calls <see cref="TlbShootdown.Exit"/>, so a concurrent flush (a migration unmapping the page)
    /// waits for the access instead of copying the page under it. The caller holds the mmap lock
    /// for read.
    /// </summary>
    /// <remarks>
    /// A fault handler returning without progress (it lost a race: the page was locked by a
    /// migration, migrate_to_ram could not collect it, a COW raced) is simply retried. Only
    /// <see cref="MaxFaultRetries"/> consecutive retries in which the entry never changed and
    /// nobody else made progress, spanning at least <see cref="LivelockTicks"/> of wall time
    /// (except under exploration), count as a livelock (MM-R06): a retry after which the entry
    /// changed, or after which the fault had to wait (<see cref="FaultResult"/> progress), starts
    /// the count again.
    /// </remarks>
    internal unsafe byte* TranslateForCpu(ulong address, bool write, out int tlb)
    {
        ulong lastSeen = ulong.MaxValue;
        long stuckSince = 0;
        for (int attempt = 0; attempt < MaxFaultRetries || !LivelockConfirmed(ref stuckSince); attempt++)
        {
            tlb = Tlb.Enter();
            ulong[]? pmdTable = Tables.PmdTable(address, allocate: false);
            ulong entry = 0;
            if (pmdTable != null)
            {
                ref ulong pmdSlot = ref pmdTable[PageTables.PmdIndex(address)];
                ulong pmd = Volatile.Read(ref pmdSlot);
                if (pmd != 0)
                {
                    ref ulong slot = ref PageTables.IsTable(pmd) ? ref Tables.TableOf(pmd)[PageTables.PteIndex(address)] : ref pmdSlot;
                    entry = Volatile.Read(ref slot);
                    const ulong mask = Pte.PresentBit | Pte.ProtNoneBit;
                    // The MMU sets the accessed (young) bit on every access through an old entry
                    // and the dirty bit on the first write through a clean one, atomically and
                    // only while the entry is still the one it walked (the rmap young walk clears
                    // the accessed bit under the page-table lock, Machine.FolioReferenced).
                    ulong hardware = write ? Pte.YoungBit | Pte.DirtyBit : Pte.YoungBit;
                    if ((entry & mask) == Pte.PresentBit && (!write || (entry & Pte.WriteBit) != 0)
                        && ((entry & hardware) == hardware || Interlocked.CompareExchange(ref slot, entry | hardware, entry) == entry))
                    {
                        ulong pfn = (entry & Pte.PfnMask) >> Pte.PfnShift;
                        ulong offset = (entry & Pte.HugeBit) != 0 ? address & (Page.PmdSize - 1) : address & Page.OffsetMask;
                        return Machine.PageAddress(pfn) + offset;
                    }
                }
            }
            Tlb.Exit(tlb);
            // A fault that found the entry changed since the last attempt made progress (someone's).
            if (entry != lastSeen) { attempt = 0; stuckSince = 0; }
            // No progress since the last attempt: someone else holds what the fault needs (a
            // migration, a split's frozen folio). Give the CPU to them instead of spinning on the
            // shared cores; under exploration this retry is a yield point, so the controlled
            // scheduler (PCT lowers the spinner) lets the page's holder run.
            else if (SchedulePoints.Hook is null) Thread.Yield();
            else SchedulePoints.Yield(this, address);
            lastSeen = entry;
            switch (HandleFault(address, write))
            {
                case FaultResult.SigSegv:
                    var vma = VmaTree.Lookup(address);
                    throw new SegmentationFault(address, write, vma == null ? "no VMA maps the address" : $"the VMA {vma} does not allow the access");
                case FaultResult.SigBus:
                    throw new BusError(address, "the fault could not be satisfied (beyond end of file, hugetlb pool empty or device page lost)");
                case FaultResult.Oom:
                    throw new ErrnoException(Errno.ENOMEM, $"out of memory faulting 0x{address:x} ({Machine.FreePages} pages free)");
            }
        }
        {
            var stuck = EntryAt(address);
            if (stuck.Kind == PteKind.DevicePrivate)
                throw new KernelBugException("MIG-R08", $"migrate_to_ram returned 0 at least {MaxFaultRetries} times in a row without progress but the faulting page at 0x{address:x} is still on the device (pass vmf.Page as FaultPage and migrate it, or return SIGBUS/OOM): the CPU refaults forever");
            string page = stuck.IsNone ? "" : $", page flags {Frames.Flags(Frames.FolioHead(stuck.Pfn))}, refcount {Frames.RefCount(Frames.FolioHead(stuck.Pfn))}";
            throw new KernelBugException("MM-R06", $"{(write ? "write" : "read")} fault at 0x{address:x} did not resolve after at least {MaxFaultRetries} retries without progress (entry {stuck}{page})");
        }
    }

    /// <summary>Whether the retries that reached <see cref="MaxFaultRetries"/> also spanned <see cref="LivelockTicks"/> (always, under exploration).</summary>
    private static bool LivelockConfirmed(ref long stuckSince)
    {
        if (SchedulePoints.Hook is not null) return true;
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        if (stuckSince == 0) stuckSince = now;
        return now - stuckSince >= LivelockTicks;
    }

    internal void CheckAlive()
    {
        if (IsTornDown) throw new InvalidOperationException($"mm {Id} has exited");
    }

    /// <summary>A CPU load of <typeparamref name="T"/> at <paramref name="address"/>.</summary>
    internal unsafe T Load<T>(ulong address) where T : unmanaged
    {
        SchedulePoints.Reach(SchedulePointKind.CpuAccess, null, address);
        if ((address & Page.OffsetMask) + (ulong)sizeof(T) > Page.Size)
        {
            T value = default;
            Read(address, new Span<byte>(&value, sizeof(T)));
            return value;
        }
        MmapLock.ReadLock();
        try
        {
            CheckAlive();
            byte* at = TranslateForCpu(address, write: false, out int tlb);
            Interleaving.TestHooks.Fire(Interleaving.TestHookPoint.CpuAccessTranslated, this, address);
            T value = Unsafe.ReadUnaligned<T>(at);
            Tlb.Exit(tlb);
            return value;
        }
        finally { MmapLock.ReadUnlock(); }
    }

    /// <summary>A CPU store of <paramref name="value"/> at <paramref name="address"/>.</summary>
    internal unsafe void Store<T>(ulong address, T value) where T : unmanaged
    {
        SchedulePoints.Reach(SchedulePointKind.CpuAccess, null, address);
        if ((address & Page.OffsetMask) + (ulong)sizeof(T) > Page.Size)
        {
            Write(address, new ReadOnlySpan<byte>(&value, sizeof(T)));
            return;
        }
        MmapLock.ReadLock();
        try
        {
            CheckAlive();
            byte* at = TranslateForCpu(address, write: true, out int tlb);
            Interleaving.TestHooks.Fire(Interleaving.TestHookPoint.CpuAccessTranslated, this, address);
            Unsafe.WriteUnaligned(at, value);
            Tlb.Exit(tlb);
        }
        finally { MmapLock.ReadUnlock(); }
    }

    /// <summary>CPU reads of <paramref name="buffer"/>.Length bytes from <paramref name="address"/>, page by page.</summary>
    internal unsafe void Read(ulong address, Span<byte> buffer)
    {
        SchedulePoints.Reach(SchedulePointKind.CpuAccess, null, address);
        CheckRange(address, buffer.Length);
        MmapLock.ReadLock();
        try
        {
            CheckAlive();
            int done = 0;
            while (done < buffer.Length)
            {
                ulong at = address + (ulong)done;
                int chunk = Math.Min(buffer.Length - done, Page.Size - (int)(at & Page.OffsetMask));
                new ReadOnlySpan<byte>(TranslateForCpu(at, write: false, out int tlb), chunk).CopyTo(buffer.Slice(done, chunk));
                Tlb.Exit(tlb);
                done += chunk;
            }
        }
        finally { MmapLock.ReadUnlock(); }
    }

    /// <summary>CPU writes of <paramref name="data"/> at <paramref name="address"/>, page by page.</summary>
    internal unsafe void Write(ulong address, ReadOnlySpan<byte> data)
    {
        SchedulePoints.Reach(SchedulePointKind.CpuAccess, null, address);
        CheckRange(address, data.Length);
        MmapLock.ReadLock();
        try
        {
            CheckAlive();
            int done = 0;
            while (done < data.Length)
            {
                ulong at = address + (ulong)done;
                int chunk = Math.Min(data.Length - done, Page.Size - (int)(at & Page.OffsetMask));
                data.Slice(done, chunk).CopyTo(new Span<byte>(TranslateForCpu(at, write: true, out int tlb), chunk));
                Tlb.Exit(tlb);
                done += chunk;
            }
        }
        finally { MmapLock.ReadUnlock(); }
    }

    private static void CheckRange(ulong address, int length)
    {
        if (length > 0 && address + (ulong)length - 1 < address)
            throw new SegmentationFault(address, false, "the access wraps around the address space");
    }

    /// <summary>
    /// populate_vma_page_range: faults in every page of [start, end) as MAP_POPULATE does — with
    /// write faults for private writable mappings (to break COW up front), read faults otherwise.
    /// Skips PROT_NONE VMAs and stops quietly at the first failure, as mm_populate does. Caller holds the mmap lock.
    /// </summary>
    internal void Populate(ulong start, ulong end)
    {
        for (ulong va = start; va < end;)
        {
            var vma = VmaTree.Lookup(va);
            if (vma == null) return;
            if (!vma.IsAccessible)
            {
                // GUP without FOLL_FORCE refuses PROT_NONE (check_vma_flags); mm_populate moves on.
                va = vma.End;
                continue;
            }
            bool write = (vma.Flags & (VmFlags.Write | VmFlags.Shared)) == VmFlags.Write;
            ulong stop = Math.Min(end, vma.End);
            for (; va < stop; va += Page.Size)
                if (HandleVmaFault(vma, va, write) != FaultResult.Ok) return;
        }
    }
}
