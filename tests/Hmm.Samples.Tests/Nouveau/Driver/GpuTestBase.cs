using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Samples.Nouveau;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Nouveau.Driver;

/// <summary>A machine (lock validation on), one process, one simulated GPU and the DSL driver attached to it.</summary>
public abstract class GpuTestBase
{
    protected const int PageSize = Page.Size;
    protected const long Us = 1_000, Ms = 1_000_000;

    protected Machine Machine = null!;
    protected Process P = null!;
    protected SimDevice Device = null!;
    protected NouveauGpu Gpu = null!;

    protected GpuSvm Svm => Gpu.Svm;

    protected virtual long SystemMemory => 512L << 20;

    [SetUp]
    public void CreateMachine()
    {
        Machine = new Machine(new MachineOptions { SystemMemory = SystemMemory, LockValidation = true });
        P = Machine.CreateProcess("app");
        Device = new SimDevice(Machine, "gpu0");
        Gpu = new NouveauGpu();
        Assert.That(Gpu.Attach(Device, P), Is.EqualTo(Errno.Ok));
    }

    [TearDown]
    public void DisposeMachine() => Machine.Dispose();

    /// <summary>The test epilogue: the driver unloads (VRAM evicted), the process exits, every invariant holds.</summary>
    protected void Finish()
    {
        if (Gpu.IsAttached) Assert.That(Svm.Unload(), Is.EqualTo(Errno.Ok));
        if (!P.HasExited) P.Exit();
        Machine.CheckInvariants();
    }

    /// <summary>Switches the driver to the UVM-style policy with <paramref name="options"/>.</summary>
    protected void Uvm(UvmPolicyOptions? options = null) => Svm.Switch(GpuPolicyMode.Uvm, options ?? UvmPolicyOptions.Default);

    protected ulong Map(long bytes) => P.Mmap((ulong)bytes, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);

    /// <summary>The first word of page <paramref name="page"/> as the CPU fills it.</summary>
    protected static ulong Word(int page, ulong seed = 0) => 0x5151_0000_0000UL + ((ulong)page << 8) + seed;

    /// <summary>A buffer of <paramref name="pages"/> pages whose first word of page i is <see cref="Word"/>(i) (written by the CPU).</summary>
    protected ulong Filled(int pages, ulong seed = 0)
    {
        ulong buf = Map((long)pages * PageSize);
        for (int i = 0; i < pages; i++) P.Store(buf + (ulong)i * PageSize, Word(i, seed));
        return buf;
    }

    /// <summary>Where the GPU's page table points for <paramref name="va"/>: null when unmapped, else whether the frame is this GPU's VRAM.</summary>
    protected bool? GpuMapsVram(ulong va)
        => Gpu.DeviceTable.Lookup(va, out var t) ? Gpu.DeviceChunkOf(t.Frame) != null : null;

    protected GpuCounterSnapshot Counters => Svm.Snapshot();
}
