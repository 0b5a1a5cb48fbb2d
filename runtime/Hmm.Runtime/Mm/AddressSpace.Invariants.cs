using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

public sealed partial class AddressSpace
{
    /// <summary>Checks the VMA list and counts, per pfn, the PTE and PMD entries of this mm that map it.</summary>
    internal void CollectMappings(int[] pteMaps, int[] pmdMaps)
    {
        ulong prevEnd = 0;
        for (int i = 0; i < VmaTree.Count; i++)
        {
            var v = VmaTree[i];
            if (!Page.IsAligned(v.Start) || !Page.IsAligned(v.End) || v.Start >= v.End || v.Start < prevEnd || v.End > TaskSize)
                Machine.Fail($"mm {Id}: bad VMA {v} after 0x{prevEnd:x}");
            if (v.IsHugeTlb && ((v.Start | v.End) & (Page.PmdSize - 1)) != 0) Machine.Fail($"mm {Id}: hugetlb VMA {v} not 2 MiB aligned");
            prevEnd = v.End;
        }
        ulong[] pgd = Tables.TableOf(Pte.TableEntry(0).Raw);
        for (int g = 0; g < 512; g++)
        {
            if (pgd[g] == 0) continue;
            ulong[] pud = Tables.TableOf(pgd[g]);
            for (int u = 0; u < 512; u++)
            {
                if (pud[u] == 0) continue;
                ulong[] pmds = Tables.TableOf(pud[u]);
                for (int m = 0; m < 512; m++)
                {
                    ulong pmd = pmds[m];
                    if (pmd == 0) continue;
                    ulong va = ((ulong)g << Page.PgdShift) | ((ulong)u << Page.PudShift) | ((ulong)m << Page.PmdShift);
                    if (!PageTables.IsTable(pmd))
                    {
                        CheckInsideVma(va, Page.PmdSize, new Pte(pmd));
                        CountEntry(new Pte(pmd), huge: true, pteMaps, pmdMaps);
                        continue;
                    }
                    ulong[] ptes = Tables.TableOf(pmd);
                    for (int t = 0; t < 512; t++)
                    {
                        if (ptes[t] == 0) continue;
                        CheckInsideVma(va | ((ulong)t << Page.Shift), Page.Size, new Pte(ptes[t]));
                        CountEntry(new Pte(ptes[t]), huge: false, pteMaps, pmdMaps);
                    }
                }
            }
        }
    }

    private void CheckInsideVma(ulong va, ulong size, Pte entry)
    {
        var vma = VmaTree.Lookup(va);
        if (vma == null || va + size > vma.End) Machine.Fail($"mm {Id}: entry {entry} at 0x{va:x} lies outside every VMA");
    }

    private void CountEntry(Pte entry, bool huge, int[] pteMaps, int[] pmdMaps)
    {
        if (entry.Kind == PteKind.Migration)
            Machine.Fail($"mm {Id}: migration entry {entry} left with no migration in flight (finalize missing, MIG-R02)");
        if (entry.Kind is not (PteKind.Present or PteKind.DevicePrivate or PteKind.DeviceExclusive)) return;
        ulong pfn = entry.Pfn;
        if (entry.IsSpecial && !IsZeroPfn(pfn)) return;   // raw pfn mapping without struct page
        if (pfn >= (ulong)pteMaps.Length) Machine.Fail($"mm {Id}: entry {entry} references pfn 0x{pfn:x} with no struct page");
        if (IsZeroPfn(pfn)) return;
        if (huge) pmdMaps[pfn]++;
        else pteMaps[pfn]++;
    }
}
