using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;

namespace Hmm.Runtime.DeviceMemory;

/// <summary>
/// The machine's ZONE_DEVICE ranges: places new ranges in unused physical address space above
/// RAM (request_free_mem_region), onlines their struct pages, finds the pgmap of a pfn in O(1)
/// through a per-section table (page_pgmap), and implements the mm core's
/// <see cref="IDeviceMemoryHook"/>.
/// </summary>
internal sealed unsafe class DeviceMemoryRegistry : IDeviceMemoryHook
{
    private readonly Machine _machine;
    private readonly SpinLock _lock = new("devmem.registry");
    private DevPagemap?[] _bySection = Array.Empty<DevPagemap?>();
    private ulong _nextPfn;
    // Ranges given back by Remove, by address, neighbours merged: request_free_mem_region finds free
    // physical address space again, so a device that hot-removes and re-adds memory forever does
    // not run its pfns past what a device PTE can hold.
    private readonly List<(ulong First, ulong Pages)> _released = new();

    private DeviceMemoryRegistry(Machine machine)
    {
        _machine = machine;
        // Leave one empty section after RAM so device pfns are never adjacent to system ones.
        ulong ramEnd = (ulong)machine.TotalPages;
        _nextPfn = ((ramEnd + PageFrames.SectionPages - 1) & ~(PageFrames.SectionPages - 1)) + PageFrames.SectionPages;
    }

    public static DeviceMemoryRegistry For(Machine machine)
        => (DeviceMemoryRegistry)(machine.DeviceMemory ?? machine.InstallDeviceMemory(new DeviceMemoryRegistry(machine)));

    public DevPagemap Add(DevicePageKind kind, object? owner, IDevPagemapOps? ops, ulong pages)
    {
        _lock.Lock();
        ulong first;
        try
        {
            ulong span = (pages + PageFrames.SectionPages - 1) & ~(PageFrames.SectionPages - 1);
            first = TakeReleased(span) ?? _nextPfn;
            if (first == _nextPfn) _nextPfn += span;
        }
        finally { _lock.Unlock(); }
        ulong sections = (pages + PageFrames.SectionPages - 1) >> PageFrames.SectionShift;
        _machine.Frames.Online(first, sections << PageFrames.SectionShift, PageFlags.Device, pages);
        var pgmap = new DevPagemap(_machine, kind, owner, ops, first, pages);
        _lock.Lock();
        try
        {
            ulong top = (first >> PageFrames.SectionShift) + sections;
            var next = new DevPagemap?[Math.Max((ulong)_bySection.Length, top)];
            Array.Copy(_bySection, next, _bySection.Length);
            for (ulong s = first >> PageFrames.SectionShift; s < top; s++) next[s] = pgmap;
            Volatile.Write(ref _bySection, next);
        }
        finally { _lock.Unlock(); }
        return pgmap;
    }

    public void Remove(DevPagemap pgmap)
    {
        ulong sections = (pgmap.PageCount + PageFrames.SectionPages - 1) >> PageFrames.SectionShift;
        _lock.Lock();
        try
        {
            var next = (DevPagemap?[])_bySection.Clone();
            for (ulong s = pgmap.FirstPfn >> PageFrames.SectionShift; s < (pgmap.FirstPfn >> PageFrames.SectionShift) + sections; s++) next[s] = null;
            Volatile.Write(ref _bySection, next);
        }
        finally { _lock.Unlock(); }
        _machine.Frames.Offline(pgmap.FirstPfn, sections << PageFrames.SectionShift);
        // Free for a later Add only once offline, so the range is never onlined twice at once.
        _lock.Lock();
        try { Release(pgmap.FirstPfn, sections << PageFrames.SectionShift); }
        finally { _lock.Unlock(); }
    }

    /// <summary>First fit among the released ranges (caller holds the lock); null when none is large enough.</summary>
    private ulong? TakeReleased(ulong span)
    {
        for (int i = 0; i < _released.Count; i++)
        {
            var (first, pages) = _released[i];
            if (pages < span) continue;
            if (pages == span) _released.RemoveAt(i);
            else _released[i] = (first + span, pages - span);
            return first;
        }
        return null;
    }

    /// <summary>Gives [first, +pages) back, merged with released neighbours (caller holds the lock).</summary>
    private void Release(ulong first, ulong pages)
    {
        int i = 0;
        while (i < _released.Count && _released[i].First < first) i++;
        _released.Insert(i, (first, pages));
        if (i + 1 < _released.Count && first + pages == _released[i + 1].First)
        {
            _released[i] = (first, pages + _released[i + 1].Pages);
            _released.RemoveAt(i + 1);
        }
        if (i > 0 && _released[i - 1].First + _released[i - 1].Pages == _released[i].First)
        {
            _released[i - 1] = (_released[i - 1].First, _released[i - 1].Pages + _released[i].Pages);
            _released.RemoveAt(i);
        }
    }

    /// <summary>page_pgmap: the range a pfn belongs to, or null.</summary>
    public DevPagemap? PagemapOf(ulong pfn)
    {
        var table = Volatile.Read(ref _bySection);
        ulong s = pfn >> PageFrames.SectionShift;
        var pgmap = s < (ulong)table.Length ? table[s] : null;
        return pgmap != null && pgmap.Contains(pfn) ? pgmap : null;
    }

    /// <summary>Every live range.</summary>
    public List<DevPagemap> All()
    {
        var list = new List<DevPagemap>();
        foreach (var p in Volatile.Read(ref _bySection))
            if (p != null && (list.Count == 0 || !ReferenceEquals(list[^1], p))) list.Add(p);
        return list;
    }

    public DevicePageClass Classify(ulong pfn) => PagemapOf(pfn)?.Kind switch
    {
        DevicePageKind.Private => DevicePageClass.Private,
        DevicePageKind.Coherent => DevicePageClass.Coherent,
        DevicePageKind.P2PDma => DevicePageClass.P2PDma,
        _ => DevicePageClass.None,
    };

    public object? PgmapOwner(ulong pfn) => PagemapOf(pfn)?.Owner;

    public byte* CpuAddress(ulong pfn)
    {
        var pgmap = PagemapOf(pfn) ?? throw new KernelBugException("PAGE-R02", $"pfn 0x{pfn:x} is not CPU-addressable memory");
        if (pgmap.Kind == DevicePageKind.Private)
            throw new KernelBugException("PAGE-R02", $"CPU access to device-private pfn 0x{pfn:x}: the CPU cannot address private device memory");
        return pgmap.Address(pfn);
    }

    /// <summary>Any page's bytes, private device memory included: what a DMA/copy engine can reach.</summary>
    public byte* DeviceAddress(ulong pfn)
    {
        var pgmap = PagemapOf(pfn) ?? throw new KernelBugException("PAGE-R02", $"pfn 0x{pfn:x} is not device memory");
        return pgmap.Address(pfn);
    }

    public void PageFree(ulong pfn)
    {
        var pgmap = PagemapOf(pfn) ?? throw new KernelBugException("PAGE-R02", $"freed device pfn 0x{pfn:x} has no pagemap");
        // The folio keeps its order and head/tail shape so folio_free can see what it frees;
        // InitPage reshapes it when the driver reuses the memory.
        var frames = _machine.Frames;
        frames.Flags(pfn) = PageFlags.Device | (frames.Order(pfn) != 0 ? PageFlags.Head : 0);
        try { pgmap.Ops?.PageFree(pgmap, pfn); }
        finally { pgmap.PutLive(pfn); }   // only now may memunmap_pages take the memmap away
    }

    public void FolioSplit(ulong head)
    {
        var pgmap = PagemapOf(head);
        if (pgmap == null) return;
        // Each subpage becomes a folio of its own, freed on its own: each holds a pgmap reference.
        pgmap.GetLive(head, Page.PmdPages - 1);
        pgmap.Ops?.FolioSplit(pgmap, head);
    }

    public FaultResult MigrateToRam(AddressSpace mm, Vma vma, ulong address, ulong pfn, bool write)
    {
        var pgmap = PagemapOf(pfn);
        if (pgmap?.Ops == null) return FaultResult.SigBus;
        return pgmap.Ops.MigrateToRam(new VmFault(mm, vma, address, pfn, write)) switch
        {
            VmFaultResult.Ok => FaultResult.Ok,
            VmFaultResult.Oom => FaultResult.Oom,
            _ => FaultResult.SigBus,
        };
    }
}
