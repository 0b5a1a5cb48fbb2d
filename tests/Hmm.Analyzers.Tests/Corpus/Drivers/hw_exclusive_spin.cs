// HMM1037: an atomic-op path retries make_device_exclusive on EBUSY forever under the mmap lock
public sealed class HwExclusiveSpin
{
    private readonly AddressSpace _mm;
    public HwExclusiveSpin(AddressSpace mm) => _mm = mm;
    public Errno Atomic(ulong address, Action<ExclusivePage> program)
    {
        _mm.MmapLock.ReadLock();
        try
        {
#if FIXED
            for (int attempt = 0; attempt < 16; attempt++)
#else
            while (true)
#endif
            {
                var e = TryExclusive(address, out var page);
                if (e == Errno.EBUSY) continue;
                if (e != Errno.Ok) return e;
                try { program(page); }
                finally { page.Dispose(); }
                return Errno.Ok;
            }
#if FIXED
            return Errno.EBUSY;
#endif
        }
        finally { _mm.MmapLock.ReadUnlock(); }
    }
    private Errno TryExclusive(ulong address, out ExclusivePage page) => DeviceExclusive.Make(_mm, address, this, out page);
}
