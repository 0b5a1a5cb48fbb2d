using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

/// <summary>
/// Simulates a regular file (an inode with its page cache, <c>struct address_space</c>) — or,
/// created internally, the shmem object behind a shared anonymous or hugetlb mapping. The page
/// cache is the file's storage: pages are created zeroed on first access and live until the file
/// is disposed (unlinked) and no mapping uses them any more. The size is fixed at creation;
/// mapped access beyond it raises SIGBUS, as for a truncated file.
/// </summary>
public sealed class SimFile : IDisposable
{
    private readonly ulong[] _pages;           // page cache: folio index → pfn, 0 = not cached
    private readonly Locking.SpinLock _lock = new("file.i_pages");
    private int _mapRefs;                      // VMAs referencing the file (vm_file refs)
    private bool _unlinked;

    internal SimFile(Machine machine, ulong size, int id, bool internalObject, int order, string name)
    {
        Machine = machine;
        Size = size;
        Id = id;
        IsInternal = internalObject;
        Order = order;
        Name = name;
        ulong folioBytes = (ulong)Page.Size << order;
        _pages = new ulong[(size + folioBytes - 1) / folioBytes];
    }

    /// <summary>The machine.</summary>
    public Machine Machine { get; }

    /// <summary>i_size in bytes.</summary>
    public ulong Size { get; }

    /// <summary>Name for messages.</summary>
    public string Name { get; }

    /// <summary>Owner id recorded in the page cache pages' metadata.</summary>
    internal int Id { get; }

    /// <summary>Page-cache folio order: 0 for files and shmem, 9 for hugetlb objects.</summary>
    internal int Order { get; }

    /// <summary>Whether this is the shmem/hugetlb object of an anonymous shared mapping (freed with its last mapping).</summary>
    internal bool IsInternal { get; }

    /// <summary>The VMAs mapping this file (i_mmap), for rmap walks.</summary>
    internal readonly List<Vma> Mappings = new();

    /// <summary>Number of page-cache folios present.</summary>
    public int CachedFolios
    {
        get
        {
            int n = 0;
            foreach (ulong p in _pages) if (p != 0) n++;
            return n;
        }
    }

    /// <summary>pread(2): reads up to <paramref name="buffer"/>.Length bytes at <paramref name="offset"/>; returns bytes read (0 at EOF).</summary>
    public int Pread(ulong offset, Span<byte> buffer)
    {
        if (offset >= Size) return 0;
        int n = (int)Math.Min((ulong)buffer.Length, Size - offset);
        Transfer(offset, buffer[..n], default, write: false);
        return n;
    }

    /// <summary>pwrite(2): writes <paramref name="data"/> at <paramref name="offset"/> within the fixed size; returns bytes written.</summary>
    public int Pwrite(ulong offset, ReadOnlySpan<byte> data)
    {
        if (offset >= Size) throw new ErrnoException(Errno.ENOSPC, $"{Name}: offset {offset} beyond the fixed size {Size}");
        int n = (int)Math.Min((ulong)data.Length, Size - offset);
        Transfer(offset, default, data[..n], write: true);
        return n;
    }

    private unsafe void Transfer(ulong offset, Span<byte> read, ReadOnlySpan<byte> written, bool write)
    {
        int total = write ? written.Length : read.Length, done = 0;
        ulong folioBytes = (ulong)Page.Size << Order;
        while (done < total)
        {
            ulong at = offset + (ulong)done;
            ulong index = at / folioBytes;
            int inFolio = (int)(at % folioBytes);
            int chunk = Math.Min(total - done, (int)folioBytes - inFolio);
            if (!TryGetFolio(index, out ulong pfn))
                throw new ErrnoException(Errno.ENOMEM, $"{Name}: out of memory for a page-cache page");
            var bytes = new Span<byte>(Machine.PageAddress(pfn) + inFolio, chunk);
            if (write)
            {
                written.Slice(done, chunk).CopyTo(bytes);
                Machine.Frames.SetFlags(pfn, PageFlags.Dirty);
            }
            else bytes.CopyTo(read.Slice(done, chunk));
            done += chunk;
        }
    }

    /// <summary>filemap_get_folio / shmem_get_folio: the cached folio at <paramref name="index"/>, creating a zeroed one.</summary>
    internal bool TryGetFolio(ulong index, out ulong pfn)
    {
        pfn = Volatile.Read(ref _pages[index]);
        if (pfn != 0) return true;
        ulong fresh;
        bool allocated = Order == Page.PmdOrder ? Machine.TryAllocateHugeTlb(out fresh) : Machine.Allocator.TryAllocate(Order, out fresh);
        if (!allocated) return false;
        Machine.Memory.Clear(fresh, Order);
        Machine.Frames.Flags(fresh) |= PageFlags.File | PageFlags.Lru;
        Machine.Frames.Owner(fresh) = Id;
        Machine.Frames.Index(fresh) = index;
        _lock.Lock();
        try
        {
            pfn = _pages[index];
            if (pfn == 0)
            {
                Volatile.Write(ref _pages[index], fresh);
                pfn = fresh;
                return true;
            }
        }
        finally { _lock.Unlock(); }
        // Lost the race: another thread cached the folio first.
        Machine.PutPage(fresh);
        return true;
    }

    /// <summary>Folio index of the folio holding file page <paramref name="pageIndex"/>.</summary>
    internal ulong FolioIndexOf(ulong pageIndex) => pageIndex >> Order;

    /// <summary>Number of folio slots (size rounded up).</summary>
    internal ulong FolioCount => (ulong)_pages.Length;

    internal ulong CachedPfn(ulong folioIndex) => Volatile.Read(ref _pages[folioIndex]);

    internal void AddMapping(Vma vma)
    {
        _lock.Lock();
        try { Mappings.Add(vma); _mapRefs++; }
        finally { _lock.Unlock(); }
    }

    internal void RemoveMapping(Vma vma)
    {
        bool release;
        _lock.Lock();
        try
        {
            Mappings.Remove(vma);
            _mapRefs--;
            release = _mapRefs == 0 && (_unlinked || IsInternal);
        }
        finally { _lock.Unlock(); }
        if (release) Evict();
    }

    /// <summary>Unlinks the file: its pages are freed once no mapping remains.</summary>
    public void Dispose()
    {
        bool release;
        _lock.Lock();
        try
        {
            if (_unlinked) return;
            _unlinked = true;
            release = _mapRefs == 0;
        }
        finally { _lock.Unlock(); }
        if (release) Evict();
    }

    /// <summary>Whether the file was unlinked and its pages freed.</summary>
    public bool IsReleased { get; private set; }

    private void Evict()
    {
        for (int i = 0; i < _pages.Length; i++)
        {
            ulong pfn = _pages[i];
            if (pfn == 0) continue;
            _pages[i] = 0;
            Machine.PutPage(pfn);
        }
        IsReleased = true;
        Machine.ForgetFile(this);
    }

    /// <inheritdoc/>
    public override string ToString() => Name;
}
