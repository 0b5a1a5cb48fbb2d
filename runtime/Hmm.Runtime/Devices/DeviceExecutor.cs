using Hmm.Runtime.Scheduling;
using System.Buffers.Binary;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;

namespace Hmm.Runtime.Devices;

/// <summary>The device MMU as the executor sees it: translation of a device virtual address for an access.</summary>
public interface IDeviceMmu
{
    /// <summary>
    /// Translates <paramref name="va"/> of address space <paramref name="instance"/> for
    /// <paramref name="access"/>: on a hit, the page the device reaches (system or device memory);
    /// a miss or permission fault is replayable; an IOMMU fault is fatal for the thread.
    /// </summary>
    DeviceMmuResult Translate(int instance, ulong va, DeviceAccess access, out ulong pfn);
}

/// <summary>One step of a logical device thread: an 8-byte load, store or atomic add at an address.</summary>
/// <param name="Address">Device virtual address (8-byte access; may not cross a page).</param>
/// <param name="Access">Read, Write, Atomic (fetch-add of <paramref name="Value"/>) or Prefetch (no data).</param>
/// <param name="Value">Value stored, or added atomically.</param>
public readonly record struct DeviceOp(ulong Address, DeviceAccess Access, ulong Value = 0);

/// <summary>State of a logical device thread.</summary>
public enum DeviceThreadState : byte
{
    /// <summary>Ready to run its next op.</summary>
    Runnable,
    /// <summary>Stalled on a fault until a replay (or a cancel).</summary>
    Parked,
    /// <summary>Ran every op.</summary>
    Done,
    /// <summary>Its fault was cancelled: the channel was killed (the GPU's SIGSEGV).</summary>
    Failed,
}

/// <summary>
/// Simulates a device's execution engines: many logical threads (thousands, as a GPU runs)
/// issuing loads, stores and atomics through the device MMU. A miss writes a fault entry to
/// the <see cref="FaultBuffer"/> and parks the thread; <see cref="Replay"/> resumes parked
/// threads (they re-execute the faulting access), <see cref="Cancel"/> fails the threads stalled
/// on a fault. State is struct-of-arrays; running allocates nothing.
/// </summary>
public sealed class DeviceExecutor
{
    private readonly Machine _machine;
    private readonly FaultBuffer _faults;
    private readonly IDeviceMmu _mmu;
    private readonly Func<long> _now;
    private DeviceOp[] _ops = Array.Empty<DeviceOp>();
    private int[] _start = Array.Empty<int>(), _pc = Array.Empty<int>(), _end = Array.Empty<int>();
    private ulong[] _result = Array.Empty<ulong>();
    private DeviceThreadState[] _state = Array.Empty<DeviceThreadState>();
    private ulong[] _parkedOn = Array.Empty<ulong>();
    private int _instance, _client;

    /// <summary>Creates an executor raising faults into <paramref name="faults"/> and translating through <paramref name="mmu"/>.</summary>
    public DeviceExecutor(Machine machine, FaultBuffer faults, IDeviceMmu mmu, Func<long>? now = null)
    {
        _machine = machine;
        _faults = faults;
        _mmu = mmu;
        _now = now ?? (() => 0);
    }

    /// <summary>Logical threads of the current launch.</summary>
    public int ThreadCount => _state.Length;

    /// <summary>Faults raised (written or dropped on overflow).</summary>
    public long FaultsRaised { get; private set; }

    /// <summary>Ops executed successfully.</summary>
    public long OpsExecuted { get; private set; }

    /// <summary>
    /// Launches a grid: thread <c>t</c> runs <paramref name="ops"/>[starts[t] .. starts[t+1])
    /// (the last to the end) in address space <paramref name="instance"/> from engine <paramref name="client"/>.
    /// </summary>
    public void Launch(int instance, int client, DeviceOp[] ops, ReadOnlySpan<int> starts)
    {
        int n = starts.Length;
        _ops = ops;
        _instance = instance;
        _client = client;
        _start = starts.ToArray();
        _pc = starts.ToArray();
        _end = new int[n];
        for (int t = 0; t < n; t++)
        {
            _end[t] = t + 1 < n ? starts[t + 1] : ops.Length;
            if (_start[t] > _end[t] || _end[t] > ops.Length) throw new ArgumentException($"thread {t} has a bad op range");
        }
        _result = new ulong[n];
        _state = new DeviceThreadState[n];
        _parkedOn = new ulong[n];
    }

    /// <summary>Launches one logical thread per op of <paramref name="ops"/>.</summary>
    public void LaunchOnePerThread(int instance, int client, DeviceOp[] ops)
    {
        var starts = new int[ops.Length];
        for (int i = 0; i < starts.Length; i++) starts[i] = i;
        Launch(instance, client, ops, starts);
    }

    /// <summary>State of thread <paramref name="thread"/>.</summary>
    public DeviceThreadState StateOf(int thread) => _state[thread];

    /// <summary>The last value thread <paramref name="thread"/> loaded (or the old value of its last atomic).</summary>
    public ulong ResultOf(int thread) => _result[thread];

    /// <summary>Counts threads in <paramref name="state"/>.</summary>
    public int Count(DeviceThreadState state)
    {
        int n = 0;
        foreach (var s in _state) if (s == state) n++;
        return n;
    }

    /// <summary>
    /// Runs every runnable thread until it finishes or faults. Returns the number of threads
    /// that parked on a fault in this pass.
    /// </summary>
    public unsafe int Run()
    {
        int parked = 0;
        for (int t = 0; t < _state.Length; t++)
        {
            if (_state[t] != DeviceThreadState.Runnable) continue;
            while (_pc[t] < _end[t])
            {
                var op = _ops[_pc[t]];
                SchedulePoints.Reach(SchedulePointKind.DeviceStep, null, op.Address);
                var hit = _mmu.Translate(_instance, op.Address, op.Access, out ulong pfn);
                if (hit == DeviceMmuResult.IommuFault)
                {
                    _state[t] = DeviceThreadState.Failed;   // a stray DMA: recorded by the IOMMU, never replayed
                    break;
                }
                if (hit != DeviceMmuResult.Hit)
                {
                    FaultsRaised++;
                    _faults.TryWrite(new FaultEntry(op.Address, op.Access, _instance, _client, _now()));
                    _state[t] = DeviceThreadState.Parked;
                    _parkedOn[t] = Page.AlignDown(op.Address);
                    parked++;
                    break;
                }
                int offset = (int)(op.Address & Page.OffsetMask);
                if (offset > Page.Size - 8) throw new InvalidOperationException($"device op at 0x{op.Address:x} crosses a page");
                var bytes = new Span<byte>(_machine.DmaAddress(pfn) + offset, 8);
                switch (op.Access)
                {
                    case DeviceAccess.Read:
                        _result[t] = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
                        break;
                    case DeviceAccess.Write:
                        BinaryPrimitives.WriteUInt64LittleEndian(bytes, op.Value);
                        break;
                    case DeviceAccess.Atomic:
                        ulong* p = (ulong*)(_machine.DmaAddress(pfn) + offset);
                        _result[t] = Interlocked.Add(ref *p, op.Value) - op.Value;
                        break;
                }
                OpsExecuted++;
                _pc[t]++;
            }
            if (_pc[t] >= _end[t]) _state[t] = DeviceThreadState.Done;
        }
        return parked;
    }

    /// <summary>Fault replay: every parked thread becomes runnable and re-executes its faulting access on the next <see cref="Run"/>.</summary>
    public int Replay()
    {
        int n = 0;
        for (int t = 0; t < _state.Length; t++)
            if (_state[t] == DeviceThreadState.Parked) { _state[t] = DeviceThreadState.Runnable; n++; }
        return n;
    }

    /// <summary>Threads currently parked on a fault.</summary>
    public int ParkedCount => Count(DeviceThreadState.Parked);

    /// <summary>Fault cancel: every thread parked on <paramref name="address"/>'s page fails (its channel is killed). Returns the count.</summary>
    public int Cancel(ulong address)
    {
        ulong page = Page.AlignDown(address);
        int n = 0;
        for (int t = 0; t < _state.Length; t++)
            if (_state[t] == DeviceThreadState.Parked && _parkedOn[t] == page) { _state[t] = DeviceThreadState.Failed; n++; }
        return n;
    }
}
