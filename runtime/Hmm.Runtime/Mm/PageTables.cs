using System.Runtime.CompilerServices;
using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

/// <summary>
/// Simulates an mm's four-level CPU page tables (PGD → PUD → PMD → PTE) as <c>ulong[512]</c>
/// page-table pages allocated on demand. A non-leaf entry holds the index of the next-level
/// table in this store (where the kernel holds its physical address). The root (PGD) is table 0.
/// </summary>
/// <remarks>
/// Tables are created under the page-table lock (or the mmap lock held for write) and freed only
/// under the mmap lock held for write, so walkers holding the mmap lock for read (faults,
/// hmm_range_fault) read entries without locks, as the kernel's lockless walkers do. A new table
/// is filled before the entry pointing at it is published.
/// </remarks>
internal sealed class PageTables
{
    private ulong[][] _tables = new ulong[64][];
    private int _next = 1;
    private readonly Stack<int> _free = new();

    public PageTables() => _tables[0] = new ulong[Page.EntriesPerTable];

    /// <summary>Page-table pages in use, the root included.</summary>
    public int TablesInUse { get; private set; } = 1;

    public static int PgdIndex(ulong va) => (int)((va >> Page.PgdShift) & 511);
    public static int PudIndex(ulong va) => (int)((va >> Page.PudShift) & 511);
    public static int PmdIndex(ulong va) => (int)((va >> Page.PmdShift) & 511);
    public static int PteIndex(ulong va) => (int)((va >> Page.Shift) & 511);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong[] TableOf(ulong entry) => _tables[(int)((entry & Pte.PfnMask) >> Pte.PfnShift)];

    public static bool IsTable(ulong entry) => (entry & (Pte.PresentBit | Pte.TableMarker)) == (Pte.PresentBit | Pte.TableMarker);

    /// <summary>The PMD table covering <paramref name="va"/>, or null when absent and not allocating.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong[]? PmdTable(ulong va, bool allocate)
    {
        var tables = _tables;
        ulong[] pgd = tables[0];
        ulong e = pgd[PgdIndex(va)];
        if (e == 0)
        {
            if (!allocate) return null;
            e = Publish(ref pgd[PgdIndex(va)]);
        }
        ulong[] pud = TableOf(e);
        ulong e2 = pud[PudIndex(va)];
        if (e2 == 0)
        {
            if (!allocate) return null;
            e2 = Publish(ref pud[PudIndex(va)]);
        }
        return TableOf(e2);
    }

    /// <summary>
    /// For a lockless walker that found no PMD table at <paramref name="va"/>: the shift of the
    /// level whose entry is missing (<see cref="Page.PgdShift"/> or <see cref="Page.PudShift"/>),
    /// so the hole the walker reports spans to that level's boundary, as walk_pgd_range's does.
    /// </summary>
    public int HoleShift(ulong va) => Volatile.Read(ref _tables[0][PgdIndex(va)]) == 0 ? Page.PgdShift : Page.PudShift;

    /// <summary>The PTE table hanging off PMD entry <paramref name="pmd"/>, allocating it if none.</summary>
    public ulong[] EnsurePteTable(ref ulong pmd)
    {
        if (pmd == 0) Publish(ref pmd);
        else if (!IsTable(pmd)) throw new KernelBugException("MM-R03", $"PMD entry {new Pte(pmd)} is a leaf, not a table");
        return TableOf(pmd);
    }

    /// <summary>Installs a prepared PTE table (filled by the caller) into a PMD slot.</summary>
    public ulong[] NewTable(out ulong entry)
    {
        int index = AllocateIndex();
        entry = Pte.TableEntry(index).Raw;
        return _tables[index];
    }

    /// <summary>The PTE entry slot for <paramref name="va"/>, or a null ref when no PTE table exists.</summary>
    public ref ulong PteSlot(ulong va)
    {
        ulong[]? pmdTable = PmdTable(va, allocate: false);
        if (pmdTable == null) return ref Unsafe.NullRef<ulong>();
        ulong pmd = pmdTable[PmdIndex(va)];
        if (!IsTable(pmd)) return ref Unsafe.NullRef<ulong>();
        return ref TableOf(pmd)[PteIndex(va)];
    }

    /// <summary>Frees a table page whose entries are all zero; the caller clears the entry that pointed to it.</summary>
    public void FreeTable(ulong entry)
    {
        int index = (int)((entry & Pte.PfnMask) >> Pte.PfnShift);
        if (index == 0) throw new KernelBugException("MM-R03", "freeing the PGD");
        Array.Clear(_tables[index]);
        _free.Push(index);
        TablesInUse--;
    }

    /// <summary>
    /// free_pgtables: frees every PTE/PMD/PUD table page lying entirely inside [floor, ceiling) — a
    /// range no VMA covers any more — once it holds no entries.
    /// </summary>
    public void FreeRange(ulong floor, ulong ceiling)
    {
        if (ceiling <= floor) return;
        ulong[] pgd = _tables[0];
        for (ulong va = floor & ~((1UL << Page.PgdShift) - 1); va < ceiling; va += 1UL << Page.PgdShift)
        {
            ref ulong pgdE = ref pgd[PgdIndex(va)];
            if (pgdE == 0) continue;
            ulong[] pud = TableOf(pgdE);
            bool pudEmpty = true;
            for (int i = 0; i < 512; i++)
            {
                ulong pudVa = va + ((ulong)i << Page.PudShift);
                ref ulong pudE = ref pud[i];
                if (pudE == 0) continue;
                if (pudVa + (1UL << Page.PudShift) <= floor || pudVa >= ceiling) { pudEmpty = false; continue; }
                ulong[] pmdT = TableOf(pudE);
                bool pmdEmpty = true;
                for (int j = 0; j < 512; j++)
                {
                    ulong pmdVa = pudVa + ((ulong)j << Page.PmdShift);
                    ref ulong pmdE = ref pmdT[j];
                    if (pmdE == 0) continue;
                    if (!IsTable(pmdE) || pmdVa < floor || pmdVa + Page.PmdSize > ceiling) { pmdEmpty = false; continue; }
                    if (!AllZero(TableOf(pmdE))) { pmdEmpty = false; continue; }
                    FreeTable(pmdE);
                    pmdE = 0;
                }
                if (pmdEmpty && pudVa >= floor && pudVa + (1UL << Page.PudShift) <= ceiling)
                {
                    FreeTable(pudE);
                    pudE = 0;
                }
                else pudEmpty = false;
            }
            if (pudEmpty && va >= floor && va + (1UL << Page.PgdShift) <= ceiling)
            {
                FreeTable(pgdE);
                pgdE = 0;
            }
        }
    }

    private static bool AllZero(ulong[] table)
    {
        foreach (ulong e in table) if (e != 0) return false;
        return true;
    }

    private ulong Publish(ref ulong slot)
    {
        ulong entry = Pte.TableEntry(AllocateIndex()).Raw;
        Volatile.Write(ref slot, entry);
        return entry;
    }

    private int AllocateIndex()
    {
        TablesInUse++;
        if (_free.Count > 0) return _free.Pop();
        if (_next == _tables.Length)
        {
            var bigger = new ulong[_tables.Length * 2][];
            Array.Copy(_tables, bigger, _tables.Length);
            Volatile.Write(ref _tables, bigger);
        }
        _tables[_next] = new ulong[Page.EntriesPerTable];
        return _next++;
    }
}
