using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mirror;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;
using Hmm.Samples.TestHmm.Exploration;

namespace Hmm.Samples.Tests.Exploration;

/// <summary>Planted bug: programs the device page table without mmu_interval_read_retry (HMM-R05).</summary>
internal sealed class NoRetryMirror(SimDevice device, Process process) : GpuMirror(device, process)
{
    protected override bool MustRetry(ulong seq) => false;
}

/// <summary>Planted bug: drops the update lock U after read_retry said "no collision" and programs the table unlocked.</summary>
internal sealed class EarlyUnlockMirror(SimDevice device, Process process) : GpuMirror(device, process)
{
    protected override void Program(HmmRange range)
    {
        Update.Unlock();
        try { Table.Install(range.Start, range.HmmPfns); }
        finally { Update.Lock(); }
    }
}

/// <summary>
/// Planted bug: the notifier is inserted in the constructor before the device page table it
/// clears is created, so an invalidation landing in between reads a half-initialised field.
/// </summary>
internal sealed class HalfBuiltDriver : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("halfbuilt.update");
    private readonly IntervalNotifier _notifier;
    private Hmm.Runtime.Devices.DevicePageTable? _table;

    public HalfBuiltDriver(Process process)
    {
        _notifier = new IntervalNotifier(this);
        _ = _notifier.Insert(process.Mm, 0, AddressSpace.TaskSize);
        _update.Lock();
        _table = new Hmm.Runtime.Devices.DevicePageTable();
        _update.Unlock();
    }

    public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
        _update.Lock();
        try
        {
            notifier.SetSeq(curSeq);
            _table!.Clear(range.Start, Math.Min(range.End, AddressSpace.TaskSize));
            return true;
        }
        finally { _update.Unlock(); }
    }

    public void Remove() => _notifier.Remove();
}

/// <summary>Planted bug: on a copy-engine error it returns without migrate_vma_finalize (MIG-R02).</summary>
internal sealed class MissingFinalizeDriver(CopyEngine copy)
{
    public Errno MigrateOne(Process process, ulong addr)
    {
        AddressSpace mm = process.Mm;
        mm.MmapLock.ReadLock();
        try
        {
            using var args = new MigrateVma
            {
                Vma = mm.FindVma(addr),
                Start = addr,
                End = addr + 4096,
                Src = new ulong[1],
                Dst = new ulong[1],
                Flags = MigrateSelect.System,
                PgmapOwner = this,
            };
            Errno e = MigrateVma.Setup(args);
            if (e != Errno.Ok) return e;
            if (!copy.TryCopy([]))
            {
                return Errno.EIO;   // BUG: the sources stay isolated behind migration entries
            }

            MigrateVma.Pages(args);
            MigrateVma.Finalize(args);
            return Errno.Ok;
        }
        finally { mm.MmapLock.ReadUnlock(); }
    }
}
