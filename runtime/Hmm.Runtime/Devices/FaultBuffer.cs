using Hmm.Runtime.Scheduling;
using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Devices;

/// <summary>
/// Simulates a GPU's replayable fault buffer: a hardware ring of fixed capacity that the MMU
/// writes fault entries into (PUT) and the driver drains (GET), as nouveau's and UVM's drivers
/// read them (drivers.md A.2, C.1). The faulting thread stays parked until the driver issues a
/// replay (it re-executes and may fault again) or cancels its fault.
/// </summary>
/// <remarks>
/// Overflow, explicitly: when the ring is full the hardware drops the new entry and sets its
/// overflow flag (<see cref="Overflows"/> counts drops). The dropped fault is not lost for
/// good — its thread is parked like any other and re-faults after the next replay — which is why
/// drivers always replay at least once per servicing pass (UVM C.1). The ring is
/// multi-producer (device threads) / single-consumer (the driver's servicing thread).
/// </remarks>
public sealed class FaultBuffer
{
    private readonly FaultEntry[] _ring;
    private readonly SpinLock _lock = new("device.fault_buffer");
    private long _get, _put;
    private long _overflows, _pushed;

    /// <summary>Creates a ring of <paramref name="capacity"/> entries (a power of two is not required).</summary>
    public FaultBuffer(int capacity)
    {
        if (capacity <= 0) throw new ArgumentOutOfRangeException(nameof(capacity), "the fault buffer needs at least one entry");
        _ring = new FaultEntry[capacity];
    }

    /// <summary>Entries the ring holds.</summary>
    public int Capacity => _ring.Length;

    /// <summary>Entries written and not yet drained (PUT - GET).</summary>
    public int Count
    {
        get
        {
            _lock.Lock();
            try { return (int)(_put - _get); }
            finally { _lock.Unlock(); }
        }
    }

    /// <summary>Entries dropped because the ring was full (the hardware's overflow condition).</summary>
    public long Overflows => Volatile.Read(ref _overflows);

    /// <summary>Entries ever written.</summary>
    public long Written => Volatile.Read(ref _pushed);

    /// <summary>Whether an overflow happened since the last <see cref="ClearOverflow"/>.</summary>
    public bool OverflowPending { get; private set; }

    /// <summary>The MMU records a fault; false when the ring is full and the entry was dropped.</summary>
    public bool TryWrite(in FaultEntry entry)
    {
        var e = entry with { Address = Page.AlignDown(entry.Address) };
        _lock.Lock();
        try
        {
            if (_put - _get == _ring.Length || FaultInjection.Fails(FaultSite.FaultBufferOverflow))
            {
                _overflows++;
                OverflowPending = true;
                return false;
            }
            _ring[_put % _ring.Length] = e;
            _put++;
            _pushed++;
            return true;
        }
        finally { _lock.Unlock(); }
    }

    /// <summary>
    /// Fetch: copies up to <paramref name="destination"/>.Length entries from GET and advances GET
    /// (the slots become reusable before servicing starts, as nouveau does). Returns the count.
    /// </summary>
    public int Drain(Span<FaultEntry> destination)
    {
        _lock.Lock();
        try
        {
            int n = (int)Math.Min(destination.Length, _put - _get);
            for (int i = 0; i < n; i++) destination[i] = _ring[(_get + i) % _ring.Length];
            _get += n;
            return n;
        }
        finally { _lock.Unlock(); }
    }

    /// <summary>
    /// Reads up to <paramref name="destination"/>.Length entries from GET without advancing it: a
    /// driver parsing the entries between GET and PUT before it writes GET back (UVM looks at a
    /// whole fetched batch per VA block before servicing any of it). Returns the count.
    /// </summary>
    public int Peek(Span<FaultEntry> destination)
    {
        _lock.Lock();
        try
        {
            int n = (int)Math.Min(destination.Length, _put - _get);
            for (int i = 0; i < n; i++) destination[i] = _ring[(_get + i) % _ring.Length];
            return n;
        }
        finally { _lock.Unlock(); }
    }

    /// <summary>Acknowledges the overflow flag (the driver saw it and will replay).</summary>
    public void ClearOverflow()
    {
        _lock.Lock();
        try { OverflowPending = false; }
        finally { _lock.Unlock(); }
    }
}
