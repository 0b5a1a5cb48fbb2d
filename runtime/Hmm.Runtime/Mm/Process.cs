namespace Hmm.Runtime.Mm;

/// <summary>Simulates a task: a process with an address space. (Skeleton.)</summary>
public sealed class Process
{
    internal Process(Machine machine, string name, AddressSpace mm, int pid)
    {
        Machine = machine;
        Name = name;
        Mm = mm;
        Pid = pid;
    }

    /// <summary>The machine.</summary>
    public Machine Machine { get; }

    /// <summary>The process name.</summary>
    public string Name { get; }

    /// <summary>The process id.</summary>
    public int Pid { get; }

    /// <summary>The address space (mm_struct).</summary>
    public AddressSpace Mm { get; }
}
