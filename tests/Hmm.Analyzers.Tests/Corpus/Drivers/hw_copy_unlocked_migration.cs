// HMM1030: drops the mmap lock for the slow copy between migrate_vma_setup and migrate_vma_pages
public sealed class HwCopyUnlockedMigration
{
    private AddressSpace _mm = null!;
    private void Copy(MigrateVma args) { }
    public Errno ToDevice(ulong start)
    {
        _mm.MmapLock.ReadLock();
        using var args = new MigrateVma { Vma = _mm.FindVma(start), Start = start, End = start + 4096, Src = new ulong[1], Dst = new ulong[1] };
        var e = MigrateVma.Setup(args);
        if (e != Errno.Ok) { _mm.MmapLock.ReadUnlock(); return e; }
#if FIXED
        Copy(args);
#else
        _mm.MmapLock.ReadUnlock();
        Copy(args);
        _mm.MmapLock.ReadLock();
#endif
        MigrateVma.Pages(args);
        MigrateVma.Finalize(args);
        _mm.MmapLock.ReadUnlock();
        return Errno.Ok;
    }
}
