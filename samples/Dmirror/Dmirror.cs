using Hmm.Runtime;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;

namespace Hmm.Samples.TestHmm;

/// <summary>
/// Simulates <c>struct dmirror</c> of lib/test_hmm.c: one open file of a
/// <see cref="DmirrorDevice"/>, mirroring the opening process's address space. The mirror itself
/// (device page table, update lock U, interval notifier, fault and snapshot loops) is the DSL
/// driver <see cref="DmirrorFile"/>; this is the file's ioctl surface. Each public operation is
/// the ioctl of the same name (reference/kernel-hmm.md E.4): same checks, same errno, same
/// cpages/faults accounting.
/// </summary>
public sealed class Dmirror : IDisposable
{
    /// <summary>The snapshot ioctl's batch: <c>unsigned long pfns[32]</c>.</summary>
    private const int SnapshotBatch = 32;

    private readonly DmirrorFile _file;
    private readonly AddressSpace _mm;
    private int _closed;

    internal Dmirror(DmirrorDevice device, Process process)
    {
        Device = device;
        Process = process;
        _mm = process.Mm;
        _file = new DmirrorFile(device.Memory);
        var e = _file.Attach(device.Sim, process);
        if (e != Errno.Ok) throw new ErrnoException(e, "mmu_interval_notifier_insert");
    }

    /// <summary>dmirror->mdevice.</summary>
    public DmirrorDevice Device { get; }

    /// <summary>The mirrored process (the one that opened the file).</summary>
    public Process Process { get; }

    /// <summary>dmirror->flags.</summary>
    public DmirrorFlags Flags => _file.FlagBits;

    /// <summary>Entries in the device page table (for tests and tools).</summary>
    public long MappedPages => _file.EntryCount;

    /// <summary>
    /// HMM_DMIRROR_READ: the device reads <paramref name="npages"/> pages at
    /// <paramref name="addr"/> into <paramref name="mirror"/> (npages × 4096 bytes). Pages the
    /// device page table lacks are faulted in (read) from the first missing page to the end,
    /// counting a fault each time, and the copy resumes. cpages = pages copied.
    /// </summary>
    public Errno Read(ulong addr, int npages, Span<byte> mirror, out DmirrorCounters counters)
        => Transfer(addr, npages, mirror, default, write: false, out counters);

    /// <summary>
    /// HMM_DMIRROR_WRITE: the device writes <paramref name="mirror"/> to
    /// <paramref name="npages"/> pages at <paramref name="addr"/>. Needs WRITE-tagged entries;
    /// a missing or read-only one causes a write fault from that page to the end (faults++).
    /// cpages = pages written.
    /// </summary>
    public Errno Write(ulong addr, int npages, ReadOnlySpan<byte> mirror, out DmirrorCounters counters)
        => Transfer(addr, npages, default, mirror, write: true, out counters);

    // dmirror_read / dmirror_write: copy; at the first page the table cannot serve (ENOENT), fault
    // from there to the end, count it and resume. Counters only on success (copied back only then).
    private Errno Transfer(ulong addr, int npages, Span<byte> into, ReadOnlySpan<byte> from, bool write, out DmirrorCounters counters)
    {
        counters = default;
        var e = CheckCommand(addr, npages, out ulong end);
        if (e != Errno.Ok) return e;
        if ((ulong)(write ? from.Length : into.Length) < end - addr) return Errno.EFAULT;   // copy_{from,to}_user would fault
        // The ioctl runs in the mirrored process; called after it exited there is nothing to fault.
        if (!_mm.TryGet()) return Errno.EINVAL;
        int cpages = 0, faults = 0;
        try
        {
            while (true)
            {
                e = _file.CopyPagesOf(addr, addr + ((ulong)cpages << Page.Shift), end, into, from, write, ref cpages);
                if (e != Errno.ENOENT) break;
                e = _file.Fault(addr + ((ulong)cpages << Page.Shift), end, write);
                if (e != Errno.Ok) break;
                faults++;
            }
        }
        finally { _mm.Put(); }
        if (e == Errno.Ok) counters = new DmirrorCounters(cpages, faults);
        return e;
    }

    /// <summary>
    /// HMM_DMIRROR_SNAPSHOT: one <see cref="DmirrorProt"/> byte per page in <paramref name="prot"/>,
    /// from hmm_range_fault without faulting (dev_private_owner = this device), 32 pages at a time,
    /// each retried on collision for at most 1000 ms (then EBUSY). cpages = pages reported.
    /// </summary>
    public Errno Snapshot(ulong addr, int npages, Span<byte> prot, out DmirrorCounters counters)
    {
        counters = default;
        var e = CheckCommand(addr, npages, out ulong end);
        if (e != Errno.Ok) return e;
        if (!_mm.TryGet()) return Errno.EINVAL;
        int cpages = 0;
        Span<ulong> words = stackalloc ulong[SnapshotBatch];
        try
        {
            for (ulong start = addr, next; start < end; start = next)
            {
                next = Math.Min(start + ((ulong)SnapshotBatch << Page.Shift), end);
                int n = (int)((next - start) >> Page.Shift);
                e = _file.Snapshot(start, next, words[..n]);
                if (e != Errno.Ok) break;
                if (prot.Length < cpages + n) { e = Errno.EFAULT; break; }   // copy_to_user
                for (int i = 0; i < n; i++) prot[cpages + i] = _file.MkEntry(words[i]);
                cpages += n;
            }
        }
        finally { _mm.Put(); }
        if (e == Errno.Ok) counters = new DmirrorCounters(cpages, 0);
        return e;
    }

    /// <summary>
    /// HMM_DMIRROR_EXCLUSIVE: under the mmap read lock, make_device_exclusive each page (owner NULL,
    /// as test_hmm passes; the first error aborts) and map it ATOMIC-tagged while the folio is still
    /// locked (EXC-R01); then read the range back into <paramref name="mirror"/> (a missing page → ENOENT).
    /// </summary>
    public Errno Exclusive(ulong addr, int npages, Span<byte> mirror, out DmirrorCounters counters)
    {
        counters = default;
        var e = CheckCommand(addr, npages, out ulong end);
        if (e != Errno.Ok) return e;
        if (!_mm.TryGet()) return Errno.EINVAL;
        _mm.MmapLock.ReadLock();
        try
        {
            for (ulong a = addr; a < end; a += Page.Size)
            {
                e = DeviceExclusive.Make(_mm, a, owner: null, out var page);
                if (e != Errno.Ok) break;
                using (page) _file.MapAtomic(a, page.Pfn);
            }
        }
        finally
        {
            _mm.MmapLock.ReadUnlock();
            _mm.Put();
        }
        return e != Errno.Ok ? e : ReadBack(addr, end, mirror, out counters);
    }

    /// <summary>HMM_DMIRROR_CHECK_EXCLUSIVE: EPERM while any page of the range is still mapped ATOMIC.</summary>
    public Errno CheckExclusive(ulong addr, int npages)
    {
        var e = CheckCommand(addr, npages, out ulong end);
        if (e != Errno.Ok) return e;
        return _file.AnyAtomic(addr >> Page.Shift, end >> Page.Shift) ? Errno.EPERM : Errno.Ok;
    }

    /// <summary>
    /// HMM_DMIRROR_MIGRATE_TO_DEV: per ≤ 512-page piece inside one VMA (no VMA or no VM_READ →
    /// EINVAL), migrate SELECT_SYSTEM | SELECT_COMPOUND pages to device pages (holes cleared) and
    /// map them; then read the range back into <paramref name="mirror"/>: a page that did not end
    /// up mapped → ENOENT. cpages = pages read back.
    /// </summary>
    public Errno MigrateToDevice(ulong addr, int npages, Span<byte> mirror, out DmirrorCounters counters)
    {
        counters = default;
        var e = Migrate(addr, npages, toDevice: true, out ulong end, out _);
        return e != Errno.Ok ? e : ReadBack(addr, end, mirror, out counters);
    }

    /// <summary>
    /// HMM_DMIRROR_MIGRATE_TO_SYS: the same walk selecting this device's pages, into system pages
    /// (a 2 MiB folio for a 2 MiB source), erasing the device mappings. cpages counts src entries
    /// left VALID and MIGRATE, a 2 MiB entry once. An allocation failure is not an error: as
    /// dmirror_migrate_to_system ignores what dmirror_devmem_fault_alloc_and_copy returns, those
    /// entries stay on the device (a later CPU fault brings them back) and the ioctl returns 0.
    /// </summary>
    public Errno MigrateToSystem(ulong addr, int npages, out DmirrorCounters counters)
    {
        counters = default;
        var e = Migrate(addr, npages, toDevice: false, out _, out int cpages);
        if (e == Errno.Ok) counters = new DmirrorCounters(cpages, 0);
        return e;
    }

    private Errno Migrate(ulong addr, int npages, bool toDevice, out ulong end, out int cpages)
    {
        cpages = 0;
        var e = CheckCommand(addr, npages, out end);
        if (e != Errno.Ok) return e;
        if (toDevice) return _file.MigrateToDevice(addr, end);
        e = _file.MigrateToSystem(addr, end, out _, out long entries);
        cpages = (int)entries;
        return e;
    }

    // dmirror_do_read of [addr, end) without faulting, for the ioctls that read back.
    private Errno ReadBack(ulong addr, ulong end, Span<byte> mirror, out DmirrorCounters counters)
    {
        counters = default;
        if ((ulong)mirror.Length < end - addr) return Errno.EFAULT;
        int cpages = 0;
        var e = _file.CopyPagesOf(addr, addr, end, mirror, default, write: false, ref cpages);
        if (e == Errno.Ok) counters = new DmirrorCounters(cpages, 0);
        return e;
    }

    /// <summary>HMM_DMIRROR_RELEASE: evicts all of the device's memory (whichever mirror uses it) with its data, and unplugs it.</summary>
    public Errno Release()
    {
        ThrowIfClosed();
        Device.RemoveChunks();
        return Errno.Ok;
    }

    /// <summary>HMM_DMIRROR_FLAGS: dmirror->flags = <paramref name="flags"/>.</summary>
    public Errno SetFlags(DmirrorFlags flags)
    {
        ThrowIfClosed();
        _file.FlagBits = flags;
        return Errno.Ok;
    }

    /// <summary>dmirror_fops_release: removes the notifier, drops the device page table and evicts the whole device's memory. Idempotent.</summary>
    public void Close()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0) return;
        _file.Detach();
        _file.ClearTable();
        Device.RemoveChunks();
    }

    /// <summary>Same as <see cref="Close"/>.</summary>
    public void Dispose() => Close();

    /// <summary>The ioctls' common checks: an open file, a page-aligned addr, addr &lt; addr + npages × 4096 (no empty range, no wrap).</summary>
    private Errno CheckCommand(ulong addr, int npages, out ulong end)
    {
        ThrowIfClosed();
        ulong size = unchecked((ulong)(long)npages << Page.Shift);
        end = unchecked(addr + size);
        if (!Page.IsAligned(addr)) return Errno.EINVAL;
        if (npages <= 0 || end <= addr) return Errno.EINVAL;
        return Errno.Ok;
    }

    private void ThrowIfClosed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _closed) != 0, this);

    /// <inheritdoc/>
    public override string ToString() => $"dmirror of {Process} on {Device}";
}
