using System;
using System.Collections.Generic;

namespace Hmm.Runtime.Mm;

/// <summary>The simulated machine: its RAM, its processes and files. (Skeleton.)</summary>
public sealed class Machine : IDisposable
{
    private readonly List<Process> _processes = new();
    private int _nextId;

    /// <summary>Creates a machine.</summary>
    public Machine(MachineOptions? options = null) => Options = options ?? new MachineOptions();

    /// <summary>The options the machine was built with.</summary>
    public MachineOptions Options { get; }

    /// <summary>Creates a process with an empty address space.</summary>
    public Process CreateProcess(string name)
    {
        int id = ++_nextId;
        var p = new Process(this, name, new AddressSpace(this, id), id);
        _processes.Add(p);
        return p;
    }

    /// <summary>Walks all state and throws on the first broken invariant.</summary>
    public void CheckInvariants() { }

    /// <inheritdoc/>
    public void Dispose() { }
}
