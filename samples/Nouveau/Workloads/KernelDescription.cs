using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;

namespace Hmm.Samples.Nouveau;

/// <summary>How a GPU kernel's logical threads walk their buffer.</summary>
public enum KernelPattern
{
    /// <summary>Op <c>g</c> (of all threads, coalesced: op <c>j</c> of thread <c>t</c> is <c>g = j·Threads + t</c>) touches <c>Base + g·StrideBytes mod Bytes</c>; 8-byte stride is a plain stream.</summary>
    Streaming,

    /// <summary>As <see cref="Streaming"/> with a larger <see cref="KernelDescription.StrideBytes"/> (1 of every k pages: stride k·4 KiB).</summary>
    Strided,

    /// <summary>Op <c>g</c> touches a pseudo-random 8-byte word of the buffer (a fixed hash of <see cref="KernelDescription.Seed"/> and g).</summary>
    Random,
}

/// <summary>
/// A GPU kernel as data (the "program" hmmsim and tests launch without writing a driver, issue
/// 13): <see cref="Threads"/> logical threads each issuing <see cref="OpsPerThread"/> 8-byte
/// accesses of one <see cref="Access"/> kind over [<see cref="Base"/>, <see cref="Base"/> +
/// <see cref="Bytes"/>) in a <see cref="Pattern"/>. Writes store <see cref="Value"/>; atomics add
/// <see cref="Value"/>. Builds the <see cref="DeviceOp"/> array the runtime's
/// <see cref="DeviceExecutor"/> runs, and tells a reference model what memory must hold afterwards.
/// </summary>
/// <example>
/// The fault storm of drivers.md F.1.7, 10,000 threads on 16 pages:
/// <code>new KernelDescription { Base = buf, Bytes = 16 * 4096, Threads = 10_000, Pattern = KernelPattern.Strided, StrideBytes = 4096 }</code>
/// </example>
public sealed record KernelDescription
{
    /// <summary>First byte of the buffer (8-byte aligned).</summary>
    public ulong Base { get; init; }

    /// <summary>Buffer length in bytes (a multiple of 8).</summary>
    public ulong Bytes { get; init; }

    /// <summary>Logical GPU threads.</summary>
    public int Threads { get; init; } = 1;

    /// <summary>Accesses per thread.</summary>
    public int OpsPerThread { get; init; } = 1;

    /// <summary>The walk.</summary>
    public KernelPattern Pattern { get; init; } = KernelPattern.Streaming;

    /// <summary>Read, write, atomic add, or hardware prefetch.</summary>
    public DeviceAccess Access { get; init; } = DeviceAccess.Read;

    /// <summary>Distance between consecutive ops (8 = streaming, 4096·k = 1 of every k pages); a multiple of 8.</summary>
    public ulong StrideBytes { get; init; } = 8;

    /// <summary>Value stored by writes, or added by atomics.</summary>
    public ulong Value { get; init; } = 1;

    /// <summary>Seed of the <see cref="KernelPattern.Random"/> walk.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>Total accesses.</summary>
    public long TotalOps => (long)Threads * OpsPerThread;

    /// <summary>Throws <see cref="ArgumentException"/> when the description cannot be run.</summary>
    public KernelDescription Validate()
    {
        if (Threads < 1 || OpsPerThread < 1) throw new ArgumentException("a kernel needs at least one thread and one op per thread");
        if (Bytes < 8 || Bytes % 8 != 0 || Base % 8 != 0) throw new ArgumentException("the buffer must be 8-byte aligned and at least 8 bytes long");
        if (StrideBytes == 0 || StrideBytes % 8 != 0) throw new ArgumentException("the stride must be a positive multiple of 8");
        if (TotalOps > int.MaxValue) throw new ArgumentException("too many ops for one launch");
        return this;
    }

    /// <summary>The byte address op <paramref name="g"/> (global, coalesced order) touches.</summary>
    public ulong AddressOf(long g) => Pattern switch
    {
        KernelPattern.Random => Base + (Mix(Seed, (ulong)g) % (Bytes / 8)) * 8,
        _ => Base + ((ulong)g * StrideBytes) % Bytes,
    };

    /// <summary>
    /// Builds the launch: the ops (thread <c>t</c>'s ops contiguous, in program order) and each
    /// thread's first op index, for <see cref="DeviceExecutor.Launch"/>.
    /// </summary>
    public KernelProgram Build()
    {
        Validate();
        var ops = new DeviceOp[TotalOps];
        var starts = new int[Threads];
        int k = 0;
        for (int t = 0; t < Threads; t++)
        {
            starts[t] = k;
            for (int j = 0; j < OpsPerThread; j++)
            {
                long g = (long)j * Threads + t;
                ops[k++] = new DeviceOp(AddressOf(g), Access, Access is DeviceAccess.Write or DeviceAccess.Atomic ? Value : 0);
            }
        }
        return new KernelProgram(this, ops, starts);
    }

    /// <summary>
    /// Distinct pages the kernel touches (what a perfect fault path services: e.g. 16 for the storm).
    /// Walks every op once; meant for tests and reports, not hot paths.
    /// </summary>
    public int DistinctPages()
    {
        var pages = new HashSet<ulong>();
        for (long g = 0; g < TotalOps; g++) pages.Add(Page.AlignDown(AddressOf(g)));
        return pages.Count;
    }

    /// <summary>
    /// Applies the kernel's effect to a reference model of memory (<paramref name="model"/> maps an
    /// 8-byte word address to its value; absent = 0): writes store <see cref="Value"/>, atomics add
    /// it once per op. Threads that failed (cancelled) are excluded by <paramref name="threadDone"/>.
    /// </summary>
    public void ApplyTo(Dictionary<ulong, ulong> model, Func<int, bool> threadDone)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(threadDone);
        if (Access is not (DeviceAccess.Write or DeviceAccess.Atomic)) return;
        for (int t = 0; t < Threads; t++)
        {
            if (!threadDone(t)) continue;
            for (int j = 0; j < OpsPerThread; j++)
            {
                ulong a = AddressOf((long)j * Threads + t);
                model.TryGetValue(a, out ulong old);
                model[a] = Access == DeviceAccess.Write ? Value : old + Value;
            }
        }
    }

    /// <summary>splitmix64 of (seed, g): a fixed, portable pseudo-random walk.</summary>
    private static ulong Mix(ulong seed, ulong g)
    {
        ulong z = seed * 0x9E3779B97F4A7C15UL + g + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

/// <summary>A built kernel: its description, the ops and each thread's first op (what <see cref="DeviceExecutor.Launch"/> takes).</summary>
/// <param name="Description">What it was built from.</param>
/// <param name="Ops">All ops, thread by thread.</param>
/// <param name="Starts">Thread <c>t</c> runs <c>Ops[Starts[t] .. Starts[t+1])</c>.</param>
public sealed record KernelProgram(KernelDescription Description, DeviceOp[] Ops, int[] Starts)
{
    /// <summary>Threads.</summary>
    public int Threads => Starts.Length;

    /// <summary>One past thread <paramref name="t"/>'s last op.</summary>
    public int EndOf(int t) => t + 1 < Starts.Length ? Starts[t + 1] : Ops.Length;
}
