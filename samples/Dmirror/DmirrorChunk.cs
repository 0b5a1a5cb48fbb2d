using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;

namespace Hmm.Samples.TestHmm;

/// <summary>
/// Simulates <c>struct dmirror_chunk</c>: one <see cref="DmirrorDevice.ChunkSize"/> range of
/// device memory (its own <see cref="DevPagemap"/>, memremap_pages), owned by a device, with the
/// per-page <c>zone_device_data</c> test_hmm keeps: for device-private memory the "backing"
/// system page that really stores the data (BACKING_PAGE), and the mirror that migrated the page
/// (the backing page's own zone_device_data, used by migrate_to_ram).
/// </summary>
internal sealed class DmirrorChunk : IDevPagemapOps
{
    private readonly ulong[] _backing;
    private readonly ulong[] _backingHead;
    private readonly Dmirror?[] _mirror;

    public DmirrorChunk(DmirrorDevice device)
    {
        Device = device;
        int pages = (int)(device.ChunkBytes >> Page.Shift);
        _backing = new ulong[pages];
        _backingHead = new ulong[pages];
        _mirror = new Dmirror?[pages];
    }

    /// <summary>devmem->mdevice.</summary>
    public DmirrorDevice Device { get; }

    /// <summary>devmem->pagemap.</summary>
    public DevPagemap Pgmap { get; private set; } = null!;

    /// <summary>devmem->remove: the chunk is being evicted; freed pages no longer go back to the free lists.</summary>
    public bool Removing { get; set; }

    public void Attach(DevPagemap pgmap) => Pgmap = pgmap;

    /// <summary>
    /// Records what dmirror_devmem_alloc_page and the migration copy store in zone_device_data:
    /// the backing page(s) (<paramref name="rpage"/>, 0 for coherent memory) and the mirror.
    /// </summary>
    public void SetPageData(ulong dpfn, int order, ulong rpage, Dmirror mirror)
    {
        int idx = (int)(dpfn - Pgmap.FirstPfn);
        for (int k = 0; k < 1 << order; k++)
        {
            _backing[idx + k] = rpage == 0 ? 0 : rpage + (ulong)k;
            _backingHead[idx + k] = rpage;
            _mirror[idx + k] = mirror;
        }
    }

    /// <summary>BACKING_PAGE(page): where the device's bytes of <paramref name="dpfn"/> live (the page itself for coherent memory).</summary>
    public ulong BackingOf(ulong dpfn)
    {
        ulong r = _backing[(int)(dpfn - Pgmap.FirstPfn)];
        return r != 0 ? r : dpfn;
    }

    /// <summary>The mirror that migrated <paramref name="dpfn"/> here (rpage->zone_device_data).</summary>
    public Dmirror? MirrorOf(ulong dpfn) => _mirror[(int)(dpfn - Pgmap.FirstPfn)];

    /// <summary>
    /// dmirror_devmem_free (dev_pagemap_ops.folio_free): frees the backing page(s) and, unless the
    /// chunk is being removed, pushes the device page or folio back on its free list (cfree).
    /// A 2 MiB device folio the core split into base pages comes back page by page; its backing
    /// folio is released with the last of them (what test_hmm's folio_split op keeps consistent).
    /// </summary>
    public void PageFree(DevPagemap pgmap, ulong pfn)
    {
        int order = pgmap.FolioOrder(pfn);
        int idx = (int)(pfn - Pgmap.FirstPfn);
        ulong head = _backingHead[idx];
        for (int k = 0; k < 1 << order; k++)
        {
            _backing[idx + k] = 0;
            _backingHead[idx + k] = 0;
            _mirror[idx + k] = null;
        }
        Device.FreeDevicePage(this, pfn, order, head);
    }

    /// <summary>dmirror_devmem_fault (dev_pagemap_ops.migrate_to_ram).</summary>
    public VmFaultResult MigrateToRam(in VmFault vmf) => Device.MigrateToRam(this, vmf);
}
