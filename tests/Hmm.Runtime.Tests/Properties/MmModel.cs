using Hmm.Runtime.Mm;

namespace Hmm.Runtime.Tests.Properties;

/// <summary>A private (anonymous or COW) page of the reference model: shared by reference between processes after fork, copied on write.</summary>
internal sealed class ModelPage
{
    public const int Size = 4096;
    public readonly byte[] Data = new byte[Size];

    /// <summary>How many process page entries reference this page (the physical page's mapcount).</summary>
    public int MapCount;

    /// <summary>MADV_FREE'd and not written since: reclaim may drop it (then it reads zero).</summary>
    public bool LazyFree;
}

/// <summary>A file, or the shmem object behind a shared anonymous mapping: bytes shared by every mapping.</summary>
internal sealed class ModelObject
{
    public ModelObject(string name, ulong size, SimFile? file)
    {
        Name = name;
        Size = size;
        File = file;
        Pages = (size + ModelPage.Size - 1) / ModelPage.Size;
        Data = new byte[Pages * ModelPage.Size];
    }

    public string Name { get; }
    public ulong Size { get; }
    public SimFile? File { get; }
    public ulong Pages { get; }
    public byte[] Data { get; }
    public override string ToString() => Name;
}

/// <summary>One mapped page of a process in the model.</summary>
internal sealed class ModelEntry
{
    public Prot Prot;
    public bool Shared;

    /// <summary>The file or shmem object behind the page; null for private anonymous memory.</summary>
    public ModelObject? Obj;

    /// <summary>Page index in <see cref="Obj"/> (the VMA's linear index).</summary>
    public ulong Index;

    /// <summary>The private copy (private mappings only); null reads the backing (zero or the file).</summary>
    public ModelPage? Page;

    /// <summary>A device holds the page through a device-exclusive entry; any CPU access (or GUP, fork) restores it.</summary>
    public bool Exclusive;

    public bool PrivateAnon => !Shared && Obj == null;

    public ModelEntry Clone() => new() { Prot = Prot, Shared = Shared, Obj = Obj, Index = Index, Page = Page, Exclusive = Exclusive };
}

/// <summary>A process in the model: page number → entry.</summary>
internal sealed class ModelProc
{
    public ModelProc(Process p) => P = p;
    public Process P { get; }
    public readonly Dictionary<ulong, ModelEntry> Pages = new();
    public override string ToString() => P.ToString();
}
