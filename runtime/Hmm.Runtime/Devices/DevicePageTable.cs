using Hmm.Dsl;
using System.Runtime.CompilerServices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mirror;

namespace Hmm.Runtime.Devices;

/// <summary>
/// Simulates a device MMU's page table mirroring one process (nouveau's nvkm_vmm with PFNMAP
/// PTEs, drivers.md A.3 steps 8–9; mlx5's MTTs, B.5–B.7; UVM's per-GPU page tables, C.1).
/// <para>
/// <b>Layout.</b> A 48-bit VA radix of 4 levels × 512 entries, like x86-64: level 0 (root,
/// VA bits 47..39), level 1 (38..30), level 2 (29..21: a link or a 2 MiB leaf), level 3
/// (20..12: 4 KiB leaves). Every entry at every level is one 32-bit <see cref="DevicePte"/>;
/// each table is one <c>uint[513]</c> whose last slot is the count of valid entries.
/// Directory entries name their child by table id (an index into a registry of tables).
/// </para>
/// <para>
/// <b>Pruning.</b> When a clear leaves a table with no valid entry it is unlinked from its
/// parent at once, recursively up to (not including) the root — "free/prune it aggressively
/// once the device no longer has anything mirrored in a given range". Pruned tables go to a
/// small free pool (<see cref="PoolLimit"/> tables) so that install/clear cycles allocate
/// nothing after warm-up; beyond the limit they are dropped to the GC. <see cref="MemoryBytes"/>
/// counts live (linked) tables only; <see cref="PooledBytes"/> reports the pool;
/// <see cref="TrimPool"/> releases it.
/// </para>
/// <para>
/// <b>Concurrency rule.</b> Updates (<see cref="Install{TMap}"/>, <see cref="Clear"/>,
/// <see cref="Protect"/>, <see cref="TrimPool"/>) are serialised by the owning driver under its
/// update lock (svmm->mutex / umem_mutex); they are not safe against each other.
/// <see cref="Translate(ulong, bool, bool, out DeviceTranslation)"/> and <see cref="Lookup"/>
/// may run concurrently with one updater from any number of device threads: entries are
/// 32-bit words written with <see cref="Volatile"/> (never torn); a table is reused from the
/// pool only after <c>_reuseSeq</c> is bumped with a full fence, and a walk whose
/// <c>_reuseSeq</c> changed is retried, so a walk never follows a recycled table into
/// another range's entries. A concurrent walk sees each entry either before or after the
/// update touching it (as a real device TLB racing an invalidation would); after
/// <see cref="Clear"/> returns no walk that starts later can hit the cleared range.
/// </para>
/// </summary>
public sealed class DevicePageTable
{
    /// <summary>Translation levels (root = 0, 4 KiB leaves = 3).</summary>
    public const int Levels = 4;

    /// <summary>Mirrored VA width: 48 bits (256 TiB).</summary>
    public const int VaBits = 48;

    /// <summary>Exclusive VA limit.</summary>
    public const ulong VaLimit = 1UL << VaBits;

    /// <summary>Entries per table.</summary>
    public const int EntriesPerTable = Page.EntriesPerTable;

    /// <summary>
    /// Bytes one table costs: the <c>uint[513]</c> as CoreCLR x64 lays it out (16-byte header +
    /// 8-byte length + 2,052 bytes of entries/count, rounded to 8 = 2,080) plus its 8-byte
    /// registry slot. <see cref="MemoryBytes"/> = live tables × this.
    /// </summary>
    public const long BytesPerTable = 2080 + 8;

    private const int CountSlot = EntriesPerTable;
    private const int IndexMask = EntriesPerTable - 1;

    private uint[]?[] _tables = new uint[]?[64];
    private int _tableIdLimit; // ids [0, _tableIdLimit) have been handed out at least once
    private int[] _freeIds = new int[16];
    private int _freeIdCount;
    private int[] _pool = new int[16];
    private int _poolCount;
    private long _reuseSeq;
    private readonly uint[] _root;

    /// <summary>Creates an empty table (the root table is live from the start).</summary>
    /// <param name="poolLimit">Pruned tables kept for reuse (≥ 0); the rest are released.</param>
    public DevicePageTable(int poolLimit = 64)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(poolLimit);
        PoolLimit = poolLimit;
        _root = AllocTable(out _);
        _levelTables[0] = 1;
    }

    /// <summary>Maximum number of pruned tables kept for reuse.</summary>
    public int PoolLimit { get; }

    /// <summary>Valid leaf entries (a 2 MiB leaf counts once).</summary>
    public long ValidEntries { get; private set; }

    /// <summary>4 KiB pages mirrored (a 2 MiB leaf counts 512).</summary>
    public long MappedPages { get; private set; }

    /// <summary>Live tables, root included (1 when empty).</summary>
    public int LiveTables { get; private set; }

    /// <summary>Live tables per level (index 0 = root), for pruning checks.</summary>
    public int TablesAtLevel(int level) => _levelTables[level];

    private readonly int[] _levelTables = new int[Levels];

    /// <summary>Exact bytes of live directory/leaf storage: <see cref="LiveTables"/> × <see cref="BytesPerTable"/>.</summary>
    public long MemoryBytes => LiveTables * BytesPerTable;

    /// <summary>Bytes held by pruned tables kept in the reuse pool (not part of <see cref="MemoryBytes"/>).</summary>
    public long PooledBytes => _poolCount * BytesPerTable;

    /// <summary>Bytes of an empty table: the root alone.</summary>
    public static long BaselineBytes => BytesPerTable;

    // ---------------------------------------------------------------- install

    /// <summary>Installs <paramref name="hmmPfns"/> with every pfn in <paramref name="aperture"/> (frame = pfn).</summary>
    [ConsumesSnapshot]
    public Errno Install(ulong va, ReadOnlySpan<ulong> hmmPfns, DeviceAperture aperture = DeviceAperture.System, bool atomic = false)
        => Install(va, hmmPfns, new UniformTargets(aperture), atomic);

    /// <summary>
    /// Programs the table from hmm_range_fault output (drivers.md A.3 steps 8–9, nouveau_hmm_convert_pfn
    /// + PFNMAP): word <c>i</c> describes <c>va + i·4 KiB</c>. A non-VALID (or ERROR) word clears
    /// its entry. A VALID word at map order ≥ 9 whose pfn sits at the same offset in its 2 MiB
    /// block as the address does (a PMD-mapped THP) installs ONE 2 MiB leaf covering the whole
    /// aligned 2 MiB block — even the part outside the span, as nouveau does for a one-page
    /// fault window — and the rest of the span's words in that block are skipped. Otherwise one
    /// 4 KiB leaf per word; installing a 4 KiB leaf inside a 2 MiB leaf splits it first.
    /// WRITE gives the write bit; <paramref name="atomic"/> adds the atomic bit to writable
    /// entries (device-exclusive or device-local pages, A.6).
    /// </summary>
    /// <returns><see cref="Errno.EINVAL"/> when <paramref name="va"/> is not page aligned or the span passes <see cref="VaLimit"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A target frame exceeds <see cref="DevicePte.MaxFrame"/> (a machine larger than the simulated PTE can name).</exception>
    [ConsumesSnapshot]
    public Errno Install<TMap>(ulong va, ReadOnlySpan<ulong> hmmPfns, TMap map, bool atomic = false)
        where TMap : struct, IDeviceTargetMap
    {
        if (!Page.IsAligned(va) || va >= VaLimit || (ulong)hmmPfns.Length > (VaLimit - va) >> Page.Shift)
            return Errno.EINVAL;
        int i = 0;
        int n = hmmPfns.Length;
        while (i < n)
        {
            ulong a = va + ((ulong)i << Page.Shift);
            int inBlock = (int)(a >> Page.Shift) & IndexMask;
            int chunk = Math.Min(EntriesPerTable - inBlock, n - i);
            ulong w = hmmPfns[i];
            if (TryInstallHuge(a, inBlock, w, ref map))
            {
                i += chunk;
                continue;
            }
            InstallSmall(a, inBlock, hmmPfns.Slice(i, chunk), ref map, atomic);
            i += chunk;
        }
        return Errno.Ok;

        bool TryInstallHuge(ulong a, int inBlock, ulong w, ref TMap m)
        {
            if ((w & (HmmPfn.Valid | HmmPfn.Error)) != HmmPfn.Valid || HmmPfn.ToMapOrder(w) < Page.PmdOrder) return false;
            ulong pfn = HmmPfn.ToPfn(w);
            if (((int)pfn & IndexMask) != inBlock) return false;
            m.Map(pfn - (ulong)inBlock, out var aperture, out ulong frame);
            if ((frame & IndexMask) != 0) return false;
            CheckFrame(frame);
            uint e = DevicePte.Leaf(aperture, frame, (w & HmmPfn.Write) != 0, atomic);
            var pmd = Walk(a, Levels - 2, allocate: true)!;
            int idx = Index(a, Levels - 2);
            uint old = pmd[idx];
            if (old == e) return true;
            Volatile.Write(ref pmd[idx], e);
            if (old == 0)
            {
                pmd[CountSlot]++;
            }
            else if (new DevicePte(old).IsLink)
            {
                var leafTable = _tables[(int)new DevicePte(old).Frame]!;
                int gone = (int)leafTable[CountSlot];
                ValidEntries -= gone;
                MappedPages -= gone;
                Retire((int)new DevicePte(old).Frame, Levels - 1);
            }
            else
            {
                ValidEntries--;
                MappedPages -= EntriesPerTable;
            }
            ValidEntries++;
            MappedPages += EntriesPerTable;
            return true;
        }
    }

    private void InstallSmall<TMap>(ulong a, int inBlock, ReadOnlySpan<ulong> words, ref TMap map, bool atomic)
        where TMap : struct, IDeviceTargetMap
    {
        uint[]? pmd;
        bool anyValid = false;
        foreach (ulong w in words)
        {
            if ((w & (HmmPfn.Valid | HmmPfn.Error)) == HmmPfn.Valid) { anyValid = true; break; }
        }
        pmd = Walk(a, Levels - 2, allocate: anyValid);
        if (pmd is null) return; // nothing valid to install and nothing mirrored here
        int pmdIdx = Index(a, Levels - 2);
        uint pe = pmd[pmdIdx];
        if (pe == 0 && !anyValid) return;
        uint[] leaf = pe == 0 ? LinkNew(pmd, pmdIdx, Levels - 1)
            : new DevicePte(pe).IsLink ? _tables[(int)new DevicePte(pe).Frame]!
            : Split(pmd, pmdIdx, pe);
        int count = (int)leaf[CountSlot];
        int before = count;
        for (int k = 0; k < words.Length; k++)
        {
            ulong w = words[k];
            uint e = 0;
            if ((w & (HmmPfn.Valid | HmmPfn.Error)) == HmmPfn.Valid)
            {
                map.Map(HmmPfn.ToPfn(w), out var aperture, out ulong frame);
                CheckFrame(frame);
                e = DevicePte.Leaf(aperture, frame, (w & HmmPfn.Write) != 0, atomic);
            }
            ref uint slot = ref leaf[inBlock + k];
            uint old = slot;
            if (old == e) continue;
            Volatile.Write(ref slot, e);
            count += (int)(e & DevicePte.ValidBit) - (int)(old & DevicePte.ValidBit);
        }
        leaf[CountSlot] = (uint)count;
        ValidEntries += count - before;
        MappedPages += count - before;
        if (count == 0) PruneUpFrom(a, Levels - 1);
    }

    /// <summary>Replaces the 2 MiB leaf <paramref name="huge"/> at pmd[idx] by a table of 512 equivalent 4 KiB leaves.</summary>
    private uint[] Split(uint[] pmd, int idx, uint huge)
    {
        var leaf = AllocTable(out int id);
        _levelTables[Levels - 1]++;
        for (int k = 0; k < EntriesPerTable; k++) leaf[k] = huge + ((uint)k << DevicePte.FrameShift);
        leaf[CountSlot] = EntriesPerTable;
        Volatile.Write(ref pmd[idx], DevicePte.Link(id));
        ValidEntries += EntriesPerTable - 1;
        return leaf;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CheckFrame(ulong frame)
    {
        if (frame > DevicePte.MaxFrame)
            throw new ArgumentOutOfRangeException(nameof(frame), $"frame 0x{frame:x} does not fit a 27-bit device PTE");
    }

    // ---------------------------------------------------------------- clear / protect

    private enum Op : byte { Clear, ReadOnly, NoAtomic }

    /// <summary>
    /// Invalidates every entry overlapping [<paramref name="start"/>, <paramref name="end"/>)
    /// (rounded out to pages) and prunes tables left empty. A 2 MiB leaf only partly covered is
    /// cleared whole (the device re-faults the rest; a mirror may hold less than the CPU, never
    /// more). Returns the leaf entries cleared — the TLB invalidations the cost model charges.
    /// </summary>
    public long Clear(ulong start, ulong end) => Apply(start, end, Op.Clear);

    /// <summary>
    /// Drops permissions on [<paramref name="start"/>, <paramref name="end"/>): with
    /// <paramref name="write"/> false, the write and atomic bits (MMU_NOTIFY_PROTECTION_VMA/PAGE
    /// with write revoked, B.6); with true, only the atomic bit (device-exclusive revoked, A.6).
    /// A partly covered 2 MiB leaf loses the permission whole. Returns entries changed.
    /// </summary>
    public long Protect(ulong start, ulong end, bool write) => Apply(start, end, write ? Op.NoAtomic : Op.ReadOnly);

    private long Apply(ulong start, ulong end, Op op)
    {
        start = Page.AlignDown(start);
        if (end > VaLimit) end = VaLimit;
        end = (end + Page.OffsetMask) & ~Page.OffsetMask;
        if (start >= end) return 0;
        return ApplyLevel(_root, 0, 0, start, end, op);
    }

    private long ApplyLevel(uint[] table, int level, ulong baseVa, ulong start, ulong end, Op op)
    {
        int shift = Shift(level);
        ulong span = 1UL << shift;
        int first = start <= baseVa ? 0 : (int)((start - baseVa) >> shift);
        ulong lastVa = end - 1;
        int last = lastVa - baseVa >= span * EntriesPerTable ? IndexMask : (int)((lastVa - baseVa) >> shift);
        long changed = 0;
        int count = (int)table[CountSlot];
        for (int i = first; i <= last && count > 0; i++)
        {
            uint e = table[i];
            if ((e & DevicePte.ValidBit) == 0) continue;
            var pte = new DevicePte(e);
            if (pte.IsLink)
            {
                int id = (int)pte.Frame;
                var child = _tables[id]!;
                ulong childBase = baseVa + ((ulong)i << shift);
                changed += ApplyLevel(child, level + 1, childBase, start, end, op);
                if (child[CountSlot] == 0)
                {
                    Volatile.Write(ref table[i], 0);
                    count--;
                    Retire(id, level + 1);
                }
                continue;
            }
            // A leaf: 4 KiB at level 3, 2 MiB at level 2.
            uint ne = op switch
            {
                Op.Clear => 0,
                Op.ReadOnly => e & ~(DevicePte.WriteBit | DevicePte.AtomicBit),
                _ => e & ~DevicePte.AtomicBit,
            };
            if (ne == e) continue;
            Volatile.Write(ref table[i], ne);
            changed++;
            if (ne == 0)
            {
                count--;
                ValidEntries--;
                MappedPages -= level == Levels - 1 ? 1 : EntriesPerTable;
            }
        }
        table[CountSlot] = (uint)count;
        return changed;
    }

    /// <summary>After a leaf table at <paramref name="level"/> covering <paramref name="va"/> became empty, unlinks it and any ancestors left empty.</summary>
    private void PruneUpFrom(ulong va, int level)
    {
        // Re-walk from the root recording the path (at most 3 parents).
        Span<int> ids = stackalloc int[Levels];
        uint[] t = _root;
        ids[0] = 0;
        for (int l = 0; l < level; l++)
        {
            var pte = new DevicePte(t[Index(va, l)]);
            if (!pte.IsLink) return;
            ids[l + 1] = (int)pte.Frame;
            t = _tables[ids[l + 1]]!;
        }
        for (int l = level; l > 0; l--)
        {
            var child = _tables[ids[l]]!;
            if (child[CountSlot] != 0) return;
            var parent = l - 1 == 0 ? _root : _tables[ids[l - 1]]!;
            Volatile.Write(ref parent[Index(va, l - 1)], 0);
            parent[CountSlot]--;
            Retire(ids[l], l);
        }
    }

    // ---------------------------------------------------------------- device MMU

    /// <summary>The device MMU walk for a read (<paramref name="write"/> false) or a write.</summary>
    public DeviceMmuResult Translate(ulong va, bool write, out DeviceTranslation translation)
        => Translate(va, write, atomic: false, out translation);

    /// <summary>
    /// The device MMU walk: O(<see cref="Levels"/>), allocation-free, safe concurrently with one
    /// updater (see the class remarks). <see cref="DeviceMmuResult.PermissionFault"/> when the
    /// entry lacks write (for <paramref name="write"/>) or atomic (for <paramref name="atomic"/>).
    /// </summary>
    public DeviceMmuResult Translate(ulong va, bool write, bool atomic, out DeviceTranslation translation)
    {
        if (!Walk(va, out uint e, out int shift))
        {
            translation = default;
            return DeviceMmuResult.Miss;
        }
        translation = Decode(e, va, shift);
        if ((write && !translation.Writable) || (atomic && !translation.Atomic)) return DeviceMmuResult.PermissionFault;
        return DeviceMmuResult.Hit;
    }

    /// <summary>The entry mapping <paramref name="va"/>, if any (tests, snapshots, fault coalescing checks).</summary>
    public bool Lookup(ulong va, out DeviceTranslation translation)
    {
        if (!Walk(va, out uint e, out int shift))
        {
            translation = default;
            return false;
        }
        translation = Decode(e, va, shift);
        return true;
    }

    private static DeviceTranslation Decode(uint e, ulong va, int shift)
    {
        var pte = new DevicePte(e);
        ulong frame = pte.Frame;
        if (shift != Page.Shift) frame += (va >> Page.Shift) & IndexMask;
        return new DeviceTranslation(pte.Aperture, frame, pte.Writable, pte.Atomic, shift);
    }

    /// <summary>The lock-free reader walk (seq-validated against table reuse).</summary>
    private bool Walk(ulong va, out uint leaf, out int shift)
    {
        leaf = 0;
        shift = 0;
        if (va >= VaLimit) return false;
        while (true)
        {
            long seq = Volatile.Read(ref _reuseSeq);
            var tables = Volatile.Read(ref _tables);
            uint[]? t = _root;
            uint e = 0;
            int level = 0;
            bool found = false;
            while (true)
            {
                e = Volatile.Read(ref t[Index(va, level)]);
                if ((e & DevicePte.ValidBit) == 0) break;
                if (!new DevicePte(e).IsLink) { found = level >= Levels - 2; break; }
                uint id = e >> DevicePte.FrameShift;
                if (id >= (uint)tables.Length || level == Levels - 1) break; // garbage from a recycled table; the seq check retries
                t = Volatile.Read(ref tables[id]);
                if (t is null) break;
                level++;
            }
            if (Volatile.Read(ref _reuseSeq) != seq) continue;
            if (!found) return false;
            leaf = e;
            shift = Shift(level);
            return true;
        }
    }

    // ---------------------------------------------------------------- tables

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Shift(int level) => Page.Shift + 9 * (Levels - 1 - level);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Index(ulong va, int level) => (int)(va >> Shift(level)) & IndexMask;

    /// <summary>Writer walk to the table at <paramref name="level"/> covering <paramref name="va"/>, allocating directories on the way.</summary>
    private uint[]? Walk(ulong va, int level, bool allocate)
    {
        uint[] t = _root;
        for (int l = 0; l < level; l++)
        {
            int idx = Index(va, l);
            uint e = t[idx];
            if (e == 0)
            {
                if (!allocate) return null;
                t = LinkNew(t, idx, l + 1);
                continue;
            }
            t = _tables[(int)new DevicePte(e).Frame]!; // levels 0..1 hold links only
        }
        return t;
    }

    private uint[] LinkNew(uint[] parent, int idx, int childLevel)
    {
        var child = AllocTable(out int id);
        _levelTables[childLevel]++;
        Volatile.Write(ref parent[idx], DevicePte.Link(id));
        parent[CountSlot]++;
        return child;
    }

    /// <summary>Takes a table from the pool (bumping the reuse seq first) or allocates one; it is empty.</summary>
    private uint[] AllocTable(out int id)
    {
        Interlocked.Increment(ref _reuseSeq); // full fence: readers holding a pruned table see the bump before its new contents
        LiveTables++;
        if (_poolCount > 0)
        {
            id = _pool[--_poolCount];
            var t = _tables[id]!;
            if (t[CountSlot] != 0) Array.Clear(t); // retired while still populated (replaced by a 2 MiB leaf)
            return t;
        }
        if (_freeIdCount > 0)
        {
            id = _freeIds[--_freeIdCount];
        }
        else
        {
            id = _tableIdLimit++;
            if ((ulong)id > DevicePte.MaxFrame) throw new InvalidOperationException("device page table out of table ids");
            if (id == _tables.Length)
            {
                var grown = new uint[]?[_tables.Length * 2];
                _tables.CopyTo(grown, 0);
                Volatile.Write(ref _tables, grown);
            }
        }
        var table = new uint[EntriesPerTable + 1];
        Volatile.Write(ref _tables[id], table);
        return table;
    }

    /// <summary>A table unlinked from its parent: pooled (contents left for racing readers) or dropped.</summary>
    private void Retire(int id, int level)
    {
        LiveTables--;
        _levelTables[level]--;
        if (_poolCount < PoolLimit)
        {
            if (_poolCount == _pool.Length) Array.Resize(ref _pool, _pool.Length * 2);
            _pool[_poolCount++] = id;
            return;
        }
        Drop(id);
    }

    private void Drop(int id)
    {
        Volatile.Write(ref _tables[id], null);
        if (_freeIdCount == _freeIds.Length) Array.Resize(ref _freeIds, _freeIds.Length * 2);
        _freeIds[_freeIdCount++] = id;
    }

    /// <summary>Releases every pooled table to the GC (<see cref="PooledBytes"/> becomes 0).</summary>
    public void TrimPool()
    {
        while (_poolCount > 0) Drop(_pool[--_poolCount]);
    }
}
