namespace Hmm.Runtime.Devices;

/// <summary>
/// The access a device fault reports (nouveau's FAULT_ACCESS_* values, drivers.md A.2), ordered
/// by UVM's intrusiveness for coalescing: prefetch &lt; read &lt; write &lt; atomic.
/// </summary>
public enum DeviceAccess : byte
{
    /// <summary>0: a load.</summary>
    Read = 0,
    /// <summary>1: a store.</summary>
    Write = 1,
    /// <summary>2: an atomic read-modify-write (needs a device-exclusive or device-local page).</summary>
    Atomic = 2,
    /// <summary>3: a hardware prefetch: serviced without faulting pages in.</summary>
    Prefetch = 3,
}

/// <summary>
/// One replayable fault-buffer entry (nouveau's 32-byte entry, drivers.md A.2): the faulting
/// page, the access, the engine/client that faulted, the address space (instance pointer) it
/// belongs to, and the simulated time it was raised.
/// </summary>
public readonly record struct FaultEntry(ulong Address, DeviceAccess Access, int Instance, int Client, long Timestamp)
{
    /// <summary>Intrusiveness rank for sorting and coalescing: prefetch 0, read 1, write 2, atomic 3.</summary>
    public int Priority => Access switch
    {
        DeviceAccess.Prefetch => 0,
        DeviceAccess.Read => 1,
        DeviceAccess.Write => 2,
        _ => 3,
    };
}
