using System.Runtime.InteropServices;

namespace Hmm.Runtime.Memory;

/// <summary>
/// One memory node's bytes: a single pinned native arena covering pfns
/// [<see cref="FirstPfn"/>, <see cref="FirstPfn"/> + <see cref="PageCount"/>). Allocated zeroed with
/// calloc, which the C library serves with an anonymous mmap, so the host commits only the pages
/// the simulation touches: a 1 GiB machine is cheap to create in a test. Page frames are page
/// aligned, as physical pages are (calloc's own header would leave them 16 bytes off, and the copy
/// engine's streaming stores need aligned destinations).
/// </summary>
public sealed unsafe class PhysicalMemory : IDisposable
{
    private byte* _allocation;   // what calloc returned (freed on dispose)
    private byte* _base;         // _allocation rounded up to a page boundary

    /// <summary>Reserves <paramref name="pageCount"/> pages starting at <paramref name="firstPfn"/>.</summary>
    public PhysicalMemory(ulong firstPfn, ulong pageCount)
    {
        if (pageCount == 0) throw new ArgumentOutOfRangeException(nameof(pageCount), "a memory node needs at least one page");
        FirstPfn = firstPfn;
        PageCount = pageCount;
        // One page more than asked, so the first frame can start on a page boundary; the slack is
        // never touched, so the host never commits it.
        _allocation = (byte*)NativeMemory.AllocZeroed((nuint)((pageCount + 1) << Page.Shift));
        _base = (byte*)(((ulong)_allocation + Page.OffsetMask) & ~Page.OffsetMask);
    }

    /// <summary>First pfn of the node.</summary>
    public ulong FirstPfn { get; }

    /// <summary>Number of 4 KiB pages.</summary>
    public ulong PageCount { get; }

    /// <summary>Whether <paramref name="pfn"/> lies in this node.</summary>
    public bool Contains(ulong pfn) => pfn - FirstPfn < PageCount;

    /// <summary>Address of the first byte of <paramref name="pfn"/> (kmap / page_address).</summary>
    public byte* PageAddress(ulong pfn)
    {
        if (_base == null) throw new ObjectDisposedException(nameof(PhysicalMemory));
        return _base + ((pfn - FirstPfn) << Page.Shift);
    }

    /// <summary>The bytes of 2^<paramref name="order"/> pages starting at <paramref name="pfn"/>.</summary>
    public Span<byte> Pages(ulong pfn, int order = 0) => new(PageAddress(pfn), Page.Size << order);

    /// <summary>clear_page / clear_huge_page.</summary>
    public void Clear(ulong pfn, int order = 0) => NativeMemory.Clear(PageAddress(pfn), (nuint)(Page.Size << order));

    /// <summary>copy_page: copies 2^<paramref name="order"/> pages.</summary>
    public void Copy(ulong dstPfn, ulong srcPfn, int order = 0)
        => Buffer.MemoryCopy(PageAddress(srcPfn), PageAddress(dstPfn), Page.Size << order, Page.Size << order);

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_base == null) return;
        NativeMemory.Free(_allocation);
        _allocation = null;
        _base = null;
    }
}
