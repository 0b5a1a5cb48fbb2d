// HMM1042: an eviction migration selecting system and device-private pages checksums every source page with the CPU, device-private ones included
public sealed class HwMigrateMixedCpuRead
{
    private Machine _machine = null!;
    private long _checksum;

    public Errno Evict(AddressSpace mm, Vma vma, ulong start)
    {
        mm.MmapLock.ReadLock();
        try
        {
            using var args = new MigrateVma { Vma = vma, Start = start, End = start + 2 * 4096, Src = new ulong[2], Dst = new ulong[2], Flags = MigrateSelect.System | MigrateSelect.DevicePrivate, PgmapOwner = this };
            var e = MigrateVma.Setup(args);
            if (e != Errno.Ok) return e;
            for (int i = 0; i < 2; i++)
            {
                if ((args.Src[i] & MigratePfn.Migrate) == 0) continue;
                ulong pfn = args.Src[i] >> MigratePfn.Shift;
#if FIXED
                if (DevPagemap.Of(_machine, pfn) is { Kind: DevicePageKind.Private }) continue;
#endif
                _checksum += HighMem.Map(_machine, pfn)[0];
            }
            MigrateVma.Pages(args);
            MigrateVma.Finalize(args);
            return Errno.Ok;
        }
        finally { mm.MmapLock.ReadUnlock(); }
    }
}
