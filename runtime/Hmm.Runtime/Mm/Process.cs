using Hmm.Dsl;
namespace Hmm.Runtime.Mm;

/// <summary>
/// Simulates a task: a process with an address space, and the system calls and CPU accesses it
/// makes. Syscall-like methods throw <see cref="ErrnoException"/> where Linux returns -errno and
/// leave no partial state; CPU accesses throw <see cref="SegmentationFault"/> /
/// <see cref="BusError"/> where Linux would deliver SIGSEGV / SIGBUS.
/// </summary>
public sealed class Process
{
    private int _state;   // 0 running, 1 OOM-killed, 2 exited

    internal Process(Machine machine, string name, AddressSpace mm, int pid)
    {
        Machine = machine;
        Name = name;
        Mm = mm;
        Pid = pid;
    }

    /// <summary>The machine.</summary>
    public Machine Machine { get; }

    /// <summary>The process name (comm).</summary>
    public string Name { get; }

    /// <summary>The process id.</summary>
    public int Pid { get; }

    /// <summary>The address space (mm_struct).</summary>
    public AddressSpace Mm { get; }

    /// <summary>Whether <see cref="Exit"/> ran.</summary>
    public bool HasExited => Volatile.Read(ref _state) == 2;

    /// <summary>
    /// mmap(2). <paramref name="addr"/> is a hint, or the exact place with
    /// <see cref="MapFlags.Fixed"/>/<see cref="MapFlags.FixedNoReplace"/>; <paramref name="file"/> and
    /// <paramref name="offset"/> are used unless <see cref="MapFlags.Anonymous"/>. Returns the start.
    /// </summary>
    public ulong Mmap(ulong length, Prot prot, MapFlags flags, SimFile? file = null, ulong offset = 0, ulong addr = 0)
    {
        CheckRunning();
        return Mm.Mmap(addr, length, prot, flags, file, offset);
    }

    /// <summary>
    /// mmap(2) of a device file whose driver supplies <paramref name="ops"/>: a shared special
    /// mapping the driver populates (or not) in <see cref="IVmOperations.Mmap"/>.
    /// </summary>
    public ulong MmapDevice(ulong length, Prot prot, IVmOperations ops, ulong addr = 0, bool fixedAddress = false)
    {
        CheckRunning();
        return Mm.MmapDevice(addr, length, prot, MapFlags.Shared | (fixedAddress ? MapFlags.Fixed : 0), ops);
    }

    /// <summary>
    /// mmap(2) of a device file with explicit <paramref name="flags"/>: <see cref="MapFlags.Shared"/>
    /// or <see cref="MapFlags.Private"/> (a private mapping of the file: what the driver inserts is
    /// mapped copy-on-write, PAGE_COPY), optionally <see cref="MapFlags.Fixed"/> or
    /// <see cref="MapFlags.FixedNoReplace"/> at <paramref name="addr"/>. EINVAL for any other flag.
    /// </summary>
    public ulong MmapDevice(ulong length, Prot prot, MapFlags flags, IVmOperations ops, ulong addr = 0)
    {
        CheckRunning();
        return Mm.MmapDevice(addr, length, prot, flags, ops);
    }

    /// <summary>munmap(2).</summary>
    public void Munmap(ulong addr, ulong length)
    {
        CheckRunning();
        Mm.Munmap(addr, length);
    }

    /// <summary>mprotect(2).</summary>
    public void Mprotect(ulong addr, ulong length, Prot prot)
    {
        CheckRunning();
        Mm.Mprotect(addr, length, prot);
    }

    /// <summary>mremap(2); returns the (possibly new) address. <paramref name="newAddr"/> is used with <see cref="MremapFlags.Fixed"/>.</summary>
    public ulong Mremap(ulong oldAddr, ulong oldLength, ulong newLength, MremapFlags flags, ulong newAddr = 0)
    {
        CheckRunning();
        return Mm.Mremap(oldAddr, oldLength, newLength, flags, newAddr);
    }

    /// <summary>madvise(2).</summary>
    public void Madvise(ulong addr, ulong length, Advice advice)
    {
        CheckRunning();
        Mm.Madvise(addr, length, advice);
    }

    /// <summary>A CPU load.</summary>
    public T Load<T>(ulong addr) where T : unmanaged
    {
        CheckRunning();
        return Mm.Load<T>(addr);
    }

    /// <summary>A CPU store.</summary>
    public void Store<T>(ulong addr, T value) where T : unmanaged
    {
        CheckRunning();
        Mm.Store(addr, value);
    }

    /// <summary>CPU reads into <paramref name="buffer"/>.</summary>
    public void Read(ulong addr, Span<byte> buffer)
    {
        CheckRunning();
        Mm.Read(addr, buffer);
    }

    /// <summary>CPU writes of <paramref name="data"/>.</summary>
    public void Write(ulong addr, ReadOnlySpan<byte> data)
    {
        CheckRunning();
        Mm.Write(addr, data);
    }

    /// <summary>
    /// pin_user_pages (get_user_pages with FOLL_PIN, plus FOLL_LONGTERM when
    /// <paramref name="longTerm"/>): faults the pages in and pins them until the result is
    /// disposed. See <see cref="AddressSpace"/> for the rules on device memory.
    /// </summary>
    [MayBlock]
    [AcquiresReference("pin", "return")]
    public PinnedPages PinUserPages(ulong addr, int npages, bool write, bool longTerm)
    {
        CheckRunning();
        return Mm.PinUserPages(addr, npages, write, longTerm);
    }

    /// <summary>fork(2): a child with a copy of this address space (private memory copy-on-write, shared memory shared).</summary>
    public Process Fork(string? name = null)
    {
        CheckRunning();
        var child = Machine.CreateProcess(name ?? Name);
        try { Mm.ForkInto(child.Mm); }
        catch
        {
            child.Exit();
            throw;
        }
        return child;
    }

    /// <summary>
    /// The OOM killer picked this process: the reaper tears its memory down without blocking
    /// (<see cref="AddressSpace"/>'s non-blockable UNMAP path). Returns the VMA ranges a notifier
    /// refused, which keep their pages. The process can only <see cref="Exit"/> afterwards.
    /// </summary>
    public IReadOnlyList<(ulong Start, ulong End)> OomKill()
    {
        CheckRunning();
        Volatile.Write(ref _state, 1);
        return Mm.OomReap();
    }

    /// <summary>exit(2): drops the process's use of its address space; the last user tears it down.</summary>
    public void Exit()
    {
        if (Interlocked.Exchange(ref _state, 2) == 2) throw new InvalidOperationException($"process {Pid} already exited");
        Machine.ForgetProcess(this);
        Mm.Put();
    }

    private void CheckRunning()
    {
        int state = Volatile.Read(ref _state);
        if (state != 0) throw new InvalidOperationException($"process {Pid} ({Name}) {(state == 1 ? "was OOM-killed" : "has exited")}");
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name}[{Pid}]";
}
