using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mirror;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;
using Hmm.Runtime.Pci;
using SpinLock = Hmm.Runtime.Locking.SpinLock;

namespace Hmm.Samples.Nouveau;

/// <summary>
/// GPUs that share one pgmap owner cookie (drivers.md F.4.4, the AMD-style "same hive" variant; amdgpu
/// gives every GPU of an XGMI hive the hive as <c>pgmap->owner</c>): the hive object IS the owner. A
/// member's hmm_range_fault with <c>dev_private_owner</c> = hive gets another member's device-private
/// pfn back as it is (HMM-R17) instead of migrating it, and the member maps it in place as a
/// <see cref="DeviceAperture.Peer"/> PTE — the owner's BAR1 address of that VRAM page (nouveau has no
/// XGMI; the peer link here is PCIe through <see cref="NouveauGpu.ExportVram"/>) — which this hive
/// decodes for the members' MMUs (<see cref="IPeerAperture"/>). Opt-in: a GPU built without a hive is
/// its own owner, as before.
/// </summary>
/// <remarks>
/// <para>
/// <b>Invalidation.</b> With one owner for all members, every member's generated trampoline skips a
/// MIGRATE/EXCLUSIVE event whose owner is the hive as "its own" (HMM-R19/R20) — it still sets its
/// sequence under its update lock, but leaves its PTEs. So when member A migrates a page (a CPU touch
/// of A's VRAM page, an eviction, a bind of a RAM page B maps), B's entries for it would go stale.
/// As amdgpu does (svm_range_evict → unmap from every GPU of the range, not only the one that
/// migrates), the migrating member unmaps the range from every other member: A's own-event
/// invalidation (generated, right after migrate_vma_setup) records the range for this thread, and
/// A's [CopyPages] — the next driver code of the same sequence, before any byte is copied and before
/// migrate_vma_pages — clears each other member's device table under that member's update lock.
/// </para>
/// <para>
/// Why this is race-free: migrate_vma_setup already ran every member's trampoline, which set the
/// member's notifier sequence under its update lock, so a snapshot of the old pfn taken before cannot
/// be installed afterwards (read_retry fails) and a new one waits on the migration entry until
/// migrate_vma_finalize. Between setup and the unmap the peer may still reach the old page through its
/// stale entry; that is before the copy, so its writes are copied along. The unmap is done outside A's
/// update lock: taking B's lock inside A's callback would nest two "nouveau.svmm" locks and deadlock
/// ABBA with B migrating at the same time. Known gap: an EXCLUSIVE event (a member's atomics on a RAM
/// page) has no copy step, so other members keep their entries for that page until its next
/// invalidation.
/// </para>
/// </remarks>
public sealed class GpuHive : IPeerAperture
{
    // The range this thread's member invalidated as its own event and must still unmap from the
    // other members (set in [OnInvalidate], consumed in [CopyPages] of the same migration).
    [ThreadStatic] private static NouveauGpu? t_pendingFrom;
    [ThreadStatic] private static ulong t_pendingStart, t_pendingEnd;

    private readonly SpinLock _lock = new("nouveau.hive");
    private NouveauGpu[] _members = [];
    private long _peerPagesMapped, _peerPagesUnmapped, _peerUnmaps;

    /// <summary>The members (GPUs whose pgmap owner is this hive and that joined it).</summary>
    public IReadOnlyList<NouveauGpu> Members => Volatile.Read(ref _members);

    /// <summary>Pages a member mapped in place in another member's VRAM (peer PTEs installed).</summary>
    public long PeerPagesMapped => Interlocked.Read(ref _peerPagesMapped);

    /// <summary>Peer unmaps: a member's migration clearing another member's device table (one per member per migration piece).</summary>
    public long PeerUnmaps => Interlocked.Read(ref _peerUnmaps);

    /// <summary>Device entries those unmaps cleared.</summary>
    public long PeerEntriesCleared => Interlocked.Read(ref _peerPagesUnmapped);

    /// <summary>
    /// Adds an attached GPU built with this hive as its owner: exposes its whole VRAM through BAR1 (the
    /// hive's peer link: every page of a member is reachable by the others) and lets its MMU decode
    /// peer entries through the hive. EINVAL when the GPU is not attached or not owned by this hive.
    /// </summary>
    public Errno Join(NouveauGpu gpu)
    {
        ArgumentNullException.ThrowIfNull(gpu);
        if (!gpu.IsAttached || !ReferenceEquals(gpu.PgmapOwner, this)) return Errno.EINVAL;
        var e = gpu.ExportVram();
        if (e != Errno.Ok) return e;
        gpu.Device.PeerAperture = this;
        _lock.Lock();
        try { _members = [.. _members, gpu]; }
        finally { _lock.Unlock(); }
        return Errno.Ok;
    }

    /// <inheritdoc/>
    public bool ResolveBus(ulong busAddress, out ulong pfn)
    {
        foreach (var m in Volatile.Read(ref _members))
            if (m.ResolveBus(busAddress, out pfn)) return true;
        pfn = 0;
        return false;
    }

    /// <summary>The member whose VRAM holds <paramref name="pfn"/>, other than <paramref name="except"/>.</summary>
    private NouveauGpu? OwnerOf(ulong pfn, NouveauGpu except)
    {
        foreach (var m in Volatile.Read(ref _members))
            if (!ReferenceEquals(m, except) && m.DeviceChunkOf(pfn) != null) return m;
        return null;
    }

    /// <summary>
    /// [OnMirrorFault] of <paramref name="importer"/> (its update lock held, after the generated code
    /// installed the snapshot): re-programs every entry holding another member's VRAM page as a peer
    /// PTE at that page's BAR1 address (nouveau_hmm_convert_pfn for a peer's page). Write permission is
    /// the snapshot's; no atomic bit (atomics over the peer link are not modelled).
    /// </summary>
    internal void MapPeerPages(NouveauGpu importer, HmmRange range, ReadOnlySpan<ulong> hmmPfns)
    {
        if (importer.Device.Pci is not { } pci) return;
        int run = -1;
        for (int i = 0; i <= hmmPfns.Length; i++)
        {
            bool peer = false;
            if (i < hmmPfns.Length)
            {
                ulong w = hmmPfns[i];
                peer = HmmPfn.IsValid(w) && (w & HmmPfn.Error) == 0 && importer.DeviceChunkOf(HmmPfn.ToPfn(w)) == null
                    && OwnerOf(HmmPfn.ToPfn(w), importer) != null;
            }
            if (peer)
            {
                if (run < 0) run = i;
                continue;
            }
            if (run < 0) continue;
            importer.DeviceTable.Install(range.Start + ((ulong)run << Page.Shift), hmmPfns.Slice(run, i - run), new PeerTargets(this, importer, pci));
            Interlocked.Add(ref _peerPagesMapped, i - run);
            run = -1;
        }
    }

    /// <summary>The BAR1 bus page of a member's VRAM page, for <paramref name="importer"/>; false when it cannot be exported.</summary>
    private bool BusPage(ulong pfn, NouveauGpu importer, PciFunction pci, out ulong frame)
    {
        frame = 0;
        var owner = OwnerOf(pfn, importer);
        var chunk = owner?.DeviceChunkOf(pfn);
        if (chunk == null || owner!.P2pPage(chunk, pfn, pci, out ulong bus) != Errno.Ok) return false;
        frame = bus >> Page.Shift;
        return true;
    }

    /// <summary>
    /// [OnInvalidate] of <paramref name="gpu"/>: an event owned by the hive reaching a member's callback
    /// is that member's own migration or exclusive access (the trampolines skip it); remember its range
    /// so the other members are unmapped before the copy (see the remarks).
    /// </summary>
    internal void NoteOwnEvent(NouveauGpu gpu, in NotifierRange range)
    {
        if (range.Event is not (NotifyEvent.Migrate or NotifyEvent.Exclusive) || !ReferenceEquals(range.Owner, this)) return;
        if (ReferenceEquals(t_pendingFrom, gpu))
        {
            t_pendingStart = Math.Min(t_pendingStart, range.Start);
            t_pendingEnd = Math.Max(t_pendingEnd, range.End);
            return;
        }
        t_pendingFrom = gpu;
        t_pendingStart = range.Start;
        t_pendingEnd = range.End;
    }

    /// <summary>
    /// [CopyPages] of <paramref name="gpu"/> (no update lock held): clears the range its own event
    /// recorded from every other member's device table, each under that member's update lock.
    /// </summary>
    internal void UnmapPeers(NouveauGpu gpu)
    {
        if (!ReferenceEquals(t_pendingFrom, gpu)) return;
        ulong start = t_pendingStart, end = t_pendingEnd;
        t_pendingFrom = null;
        foreach (var m in Volatile.Read(ref _members))
        {
            if (ReferenceEquals(m, gpu) || !m.IsAttached || !ReferenceEquals(m.Process.Mm, gpu.Process.Mm)) continue;
            Interlocked.Add(ref _peerPagesUnmapped, m.UnmapForPeer(start, end));
            Interlocked.Increment(ref _peerUnmaps);
        }
    }

    /// <summary>pfn → peer aperture at the owning member's BAR1 page (frame 0, which no BAR decodes, when the page cannot be exported: the access then faults fatally).</summary>
    private readonly struct PeerTargets(GpuHive hive, NouveauGpu importer, PciFunction pci) : IDeviceTargetMap
    {
        public void Map(ulong pfn, out DeviceAperture aperture, out ulong frame)
        {
            aperture = DeviceAperture.Peer;
            _ = hive.BusPage(pfn, importer, pci, out frame);
        }
    }
}
