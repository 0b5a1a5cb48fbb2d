using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Mirror;

// Inside the namespace so that `Hmm` names the API class, not the root namespace.
using Hmm.Runtime.Mirror;

/// <summary>hmm_range_fault (reference/kernel-hmm.md B.4, A.5, C HMM-R01/R02/R14/R15/R16/R17, H.2, H.3).</summary>
public class RangeFaultTests
{
    private const ulong P = Page.Size;
    private Machine _machine = null!;
    private Process _p = null!;

    [SetUp]
    public void SetUp()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 64L << 20, HugeTlbPages = 2 });
        _p = _machine.CreateProcess("app");
    }

    [TearDown]
    public void TearDown() => _machine.Dispose();

    private NotifierRecorder Watch(ulong start, ulong length) => NotifierRecorder.Attach(_p.Mm, start, length);

    private static HmmRange Range(NotifierRecorder rec, ulong start, ulong pages, ulong defaultFlags = 0, ulong mask = 0)
        => new(rec.Notifier, start, start + pages * P) { DefaultFlags = defaultFlags, PfnFlagsMask = mask };

    /// <summary>One attempt of the canonical sequence: read_begin, mmap read lock, hmm_range_fault, unlock.</summary>
    private Errno Attempt(HmmRange range)
    {
        range.NotifierSeq = range.Notifier!.ReadBegin();
        _p.Mm.MmapLock.ReadLock();
        try { return range.Fault(); }
        finally { _p.Mm.MmapLock.ReadUnlock(); }
    }

    /// <summary>The canonical mirroring loop (section C) with a bounded retry budget; returns the attempts used.</summary>
    private int Mirror(HmmRange range, ulong[] inputs, out Errno result)
    {
        var deadline = Environment.TickCount64 + HmmPfn.DefaultTimeoutMs;
        for (int attempt = 1; ; attempt++)
        {
            inputs.CopyTo(range.HmmPfns, 0);
            result = Attempt(range);
            if (result == Errno.EBUSY && Environment.TickCount64 < deadline) continue;
            if (result != Errno.Ok) return attempt;
            // lock U; read_retry; program the device; unlock U (the recorder's U is its spinlock).
            if (range.Notifier!.ReadRetry(range.NotifierSeq)) continue;
            return attempt;
        }
    }

    private ulong Anon(ulong pages, Prot prot = Prot.Read | Prot.Write)
        => _p.Mmap(pages * P, prot, MapFlags.Private | MapFlags.Anonymous);

    private ulong PfnAt(ulong va) => _p.Mm.EntryAt(va).Pfn;

    // ---- PTE none -------------------------------------------------------------------------

    // B.4 row "none": no fault required → 0 (and sticky bits kept).
    [Test]
    public void None_WithoutFault_IsZero_StickyKept()
    {
        ulong buf = Anon(4);
        _p.Load<byte>(buf + 3 * P);   // a PTE table exists; pages 0-2 are pte_none
        using var rec = Watch(buf, 4 * P);
        var r = Range(rec, buf, 3);
        r.HmmPfns[1] = HmmPfn.DmaMapped | HmmPfn.Error | 0x1234;   // junk non-sticky bits are overwritten
        Assert.That(Attempt(r), Is.EqualTo(Errno.Ok));
        Assert.That(r.HmmPfns, Is.EqualTo(new[] { 0UL, HmmPfn.DmaMapped, 0UL }));
        Assert.That(rec.Events, Is.Empty);
        _machine.CheckInvariants();
    }

    // B.4 row "none" + hole rules: no page table at all → 0 without fault.
    [Test]
    public void Hole_WithoutFault_IsZero()
    {
        ulong buf = Anon(8);
        using var rec = Watch(buf, 8 * P);
        var r = Range(rec, buf, 8);
        Array.Fill(r.HmmPfns, HmmPfn.P2PDma | HmmPfn.Valid);
        Assert.That(Attempt(r), Is.EqualTo(Errno.Ok));
        Assert.That(r.HmmPfns, Is.All.EqualTo(HmmPfn.P2PDma));
        _machine.CheckInvariants();
    }

    // B.4 row "none", fault required: a read fault maps the zero page → VALID, zero pfn, no WRITE, order 0.
    [Test]
    public void None_ReqFault_ReadFaultMapsZeroPage()
    {
        ulong buf = Anon(4);
        using var rec = Watch(buf, 4 * P);
        var r = Range(rec, buf, 4, HmmPfn.ReqFault);
        Assert.That(Attempt(r), Is.EqualTo(Errno.Ok));
        foreach (ulong w in r.HmmPfns)
        {
            Assert.That(w, Is.EqualTo(HmmPfn.Valid | Machine.ZeroPfn));
            Assert.That(HmmPfn.ToMapOrder(w), Is.Zero);
        }
        Assert.That(_p.Mm.EntryAt(buf).IsSpecial, Is.True, "zero page mapped");
        Assert.That(rec.Events, Is.Empty, "a read fault on pte_none invalidates nothing");
        _machine.CheckInvariants();
    }

    // B.4 row "present normal page / zero page", no fault: the zero page is reported VALID (not ERROR).
    [Test]
    public void ZeroPage_IsReportedValidReadOnly()
    {
        ulong buf = Anon(2);
        _p.Load<int>(buf);
        using var rec = Watch(buf, 2 * P);
        var r = Range(rec, buf, 1);
        Assert.That(Attempt(r), Is.EqualTo(Errno.Ok));
        Assert.That(r.HmmPfns[0], Is.EqualTo(HmmPfn.Valid | Machine.ZeroPfn));
        _machine.CheckInvariants();
    }

    // B.4: REQ_WRITE on the zero page → write fault (COW of the zero page raises CLEAR) → the
    // callback's set_seq makes check_retry true → -EBUSY; the retry then sees VALID|WRITE.
    [Test]
    public void ZeroPage_ReqWrite_CowRaisesClear_ThenEbusy_ThenConverges()
    {
        ulong buf = Anon(1);
        _p.Load<int>(buf);
        using var rec = Watch(buf, P);
        var r = Range(rec, buf, 1, HmmPfn.ReqFault | HmmPfn.ReqWrite);
        Assert.That(Attempt(r), Is.EqualTo(Errno.EBUSY));
        Assert.That(rec.Events.Select(e => e.Event), Is.EqualTo(new[] { NotifyEvent.Clear }));
        Assert.That(Attempt(r), Is.EqualTo(Errno.Ok));
        Assert.That(r.HmmPfns[0], Is.EqualTo(HmmPfn.Make(PfnAt(buf), write: true)));
        Assert.That(PfnAt(buf), Is.Not.EqualTo(Machine.ZeroPfn));
        _machine.CheckInvariants();
    }

    // ---- present pages --------------------------------------------------------------------

    // B.4 row "present normal page": writable → VALID|WRITE|pfn, order 0.
    [Test]
    public void Writable_IsValidWrite()
    {
        ulong buf = Anon(3);
        for (ulong i = 0; i < 3; i++) _p.Store(buf + i * P, (int)i + 1);
        using var rec = Watch(buf, 3 * P);
        var r = Range(rec, buf, 3);
        Assert.That(Attempt(r), Is.EqualTo(Errno.Ok));
        for (ulong i = 0; i < 3; i++) Assert.That(r.HmmPfns[i], Is.EqualTo(HmmPfn.Valid | HmmPfn.Write | PfnAt(buf + i * P)));
        // Satisfied requests fault nothing.
        r.DefaultFlags = HmmPfn.ReqFault | HmmPfn.ReqWrite;
        Assert.That(Attempt(r), Is.EqualTo(Errno.Ok));
        Assert.That(rec.Events, Is.Empty);
        _machine.CheckInvariants();
    }

    // B.4 "present, read-only after fork": VALID without WRITE; REQ_WRITE → write fault breaks COW
    // (CLEAR), check_retry → -EBUSY; the next attempt reports VALID|WRITE with a new pfn.
    [Test]
    public void ReadOnlyAfterFork_ReportedThenCowBrokenByWriteFault()
    {
        ulong buf = Anon(2);
        _p.Store(buf, 11);
        _p.Store(buf + P, 22);
        var child = _p.Fork();
        using var rec = Watch(buf, 2 * P);
        ulong shared = PfnAt(buf);
        Assert.That(child.Mm.EntryAt(buf).Pfn, Is.EqualTo(shared));

        var r = Range(rec, buf, 2);
        Assert.That(Attempt(r), Is.EqualTo(Errno.Ok));
        Assert.That(r.HmmPfns[0], Is.EqualTo(HmmPfn.Valid | shared), "VALID, no WRITE");

        r.DefaultFlags = HmmPfn.ReqFault;
        r.PfnFlagsMask = HmmPfn.ReqWrite;
        r.HmmPfns[0] = HmmPfn.ReqWrite;
        r.HmmPfns[1] = 0;
        Assert.That(Attempt(r), Is.EqualTo(Errno.EBUSY), "the COW invalidated the range");
        Assert.That(rec.Events.Where(e => e.Event == NotifyEvent.Clear && e.Start == buf), Is.Not.Empty);

        r.HmmPfns[0] = HmmPfn.ReqWrite;
        r.HmmPfns[1] = 0;
        Assert.That(Attempt(r), Is.EqualTo(Errno.Ok));
        ulong fresh = PfnAt(buf);
        Assert.That(fresh, Is.Not.EqualTo(shared));
        Assert.That(r.HmmPfns[0], Is.EqualTo(HmmPfn.Make(fresh, write: true)));
        Assert.That(_p.Load<int>(buf), Is.EqualTo(11));
        Assert.That(child.Load<int>(buf), Is.EqualTo(11));
        child.Exit();
        _machine.CheckInvariants();
    }

    // B.4: a write fault needed in a VMA without VM_WRITE → -EPERM (checked before faulting).
    [Test]
    public void WriteRequestedOnReadOnlyVma_IsEperm()
    {
        ulong buf = Anon(2, Prot.Read);
        using var rec = Watch(buf, 2 * P);
        var r = Range(rec, buf, 2, HmmPfn.ReqFault | HmmPfn.ReqWrite);
        Assert.That(Attempt(r), Is.EqualTo(Errno.EPERM));
        Assert.That(r.HmmPfns, Is.All.EqualTo(0UL), "inputs untouched");
        Assert.That(_p.Mm.EntryAt(buf).IsNone, Is.True, "nothing faulted");
        // A read request on the same VMA succeeds (zero page).
        r.DefaultFlags = HmmPfn.ReqFault;
        Assert.That(Attempt(r), Is.EqualTo(Errno.Ok));
        Assert.That(r.HmmPfns[1], Is.EqualTo(HmmPfn.Valid | Machine.ZeroPfn));
        _machine.CheckInvariants();
    }

    // B.4 per-VMA pre-check: a VMA without VM_READ (PROT_NONE) → ERROR without fault, -EFAULT with.
    [Test]
    public void ProtNoneVma_ErrorWithoutFault_EfaultWithFault()
    {
        ulong buf = Anon(2);
        _p.Store(buf, 1);
        _p.Mprotect(buf, 2 * P, Prot.None);
        using var rec = Watch(buf, 2 * P);
        var r = Range(rec, buf, 2);
        r.HmmPfns[0] = HmmPfn.DmaMapped;
        Assert.That(Attempt(r), Is.EqualTo(Errno.Ok));
        Assert.That(r.HmmPfns, Is.EqualTo(new[] { HmmPfn.Error | HmmPfn.DmaMapped, HmmPfn.Error }));

        r.DefaultFlags = HmmPfn.ReqFault;
        r.HmmPfns[0] = r.HmmPfns[1] = 0;
        Assert.That(Attempt(r), Is.EqualTo(Errno.EFAULT));
        Assert.That(r.HmmPfns, Is.All.EqualTo(0UL));
        _machine.CheckInvariants();
    }

    // B.4 per-VMA pre-check: VM_IO / VM_PFNMAP → ERROR without fault, -EFAULT with.
    [TestCase(VmFlags.Io)]
    [TestCase(VmFlags.PfnMap)]
    public void IoOrPfnMapVma_ErrorOrEfault(VmFlags flag)
    {
        ulong buf = Anon(2);
        _p.Store(buf, 1);
        using var rec = Watch(buf, 2 * P);
        Vma vma = _p.Mm.Vmas.Single(v => v.Start <= buf && buf < v.End);
        vma.Flags |= flag;
        try
        {
            var r = Range(rec, buf, 2);
            Assert.That(Attempt(r), Is.EqualTo(Errno.Ok));
            Assert.That(r.HmmPfns, Is.All.EqualTo(HmmPfn.Error));
            r.PfnFlagsMask = HmmPfn.ReqFault;
            r.HmmPfns[0] = 0;
            r.HmmPfns[1] = HmmPfn.ReqFault;
            Assert.That(Attempt(r), Is.EqualTo(Errno.EFAULT));
        }
        finally { vma.Flags &= ~flag; }
        _machine.CheckInvariants();
    }

    // B.4: no VMA (gap) → ERROR without fault, -EFAULT with; outputs before `last`, inputs after.
    [Test]
    public void Gap_ErrorWithoutFault_EfaultWithFault_InvariantHolds()
    {
        ulong buf = Anon(3);
        _p.Store(buf, 1);
        _p.Store(buf + 2 * P, 3);
        _p.Munmap(buf + P, P);
        using var rec = Watch(buf, 3 * P);
        var r = Range(rec, buf, 3);
        Assert.That(Attempt(r), Is.EqualTo(Errno.Ok));
        Assert.That(r.HmmPfns[0], Is.EqualTo(HmmPfn.Valid | HmmPfn.Write | PfnAt(buf)));
        Assert.That(r.HmmPfns[1], Is.EqualTo(HmmPfn.Error));
        Assert.That(r.HmmPfns[2], Is.EqualTo(HmmPfn.Valid | HmmPfn.Write | PfnAt(buf + 2 * P)));

        r.DefaultFlags = HmmPfn.ReqFault;
        r.HmmPfns[0] = r.HmmPfns[2] = HmmPfn.DmaMapped;
        r.HmmPfns[1] = 0;
        Assert.That(Attempt(r), Is.EqualTo(Errno.EFAULT));
        Assert.That(r.HmmPfns[0], Is.EqualTo(HmmPfn.DmaMapped | HmmPfn.Valid | HmmPfn.Write | PfnAt(buf)), "before the gap: output");
        Assert.That(r.HmmPfns[1], Is.EqualTo(0UL), "the gap: input");
        Assert.That(r.HmmPfns[2], Is.EqualTo(HmmPfn.DmaMapped), "after the gap: input");
        _machine.CheckInvariants();
    }

    // B.4 row "present special (not zero pfn)" → ERROR / -EFAULT; rows "swap"/"hwpoison" without fault → 0, hwpoison with fault → -EFAULT.
    [Test]
    public void SpecialAndHwPoisonEntries()
    {
        ulong buf = Anon(4);
        _p.Store(buf, 1);   // PTE table exists, pages 1..3 are none
        using var rec = Watch(buf, 4 * P);
        ref ulong special = ref _p.Mm.Tables.PteSlot(buf + P);
        ref ulong poison = ref _p.Mm.Tables.PteSlot(buf + 2 * P);
        ref ulong swap = ref _p.Mm.Tables.PteSlot(buf + 3 * P);
        special = Pte.Present(0x7_0000_0000 >> Page.Shift, writable: true, special: true).Raw;
        poison = Pte.NonPresent(PteKind.HwPoison, 5, writable: false).Raw;
        swap = Pte.NonPresent(PteKind.Swap, 6, writable: false).Raw;
        try
        {
            var r = Range(rec, buf, 4);
            Assert.That(Attempt(r), Is.EqualTo(Errno.Ok));
            Assert.That(r.HmmPfns[1], Is.EqualTo(HmmPfn.Error), "special");
            Assert.That(r.HmmPfns[2], Is.EqualTo(0UL), "hwpoison, no fault");
            Assert.That(r.HmmPfns[3], Is.EqualTo(0UL), "swap, no fault");

            r.PfnFlagsMask = HmmPfn.ReqFault;
            Array.Clear(r.HmmPfns);
            r.HmmPfns[1] = HmmPfn.ReqFault;
            Assert.That(Attempt(r), Is.EqualTo(Errno.EFAULT), "special with fault");
            Array.Clear(r.HmmPfns);
            r.HmmPfns[2] = HmmPfn.ReqFault;
            Assert.That(Attempt(r), Is.EqualTo(Errno.EFAULT), "hwpoison with fault");
            Assert.That(r.HmmPfns[1], Is.EqualTo(HmmPfn.Error), "outputs before the failing entry");
        }
        finally { special = 0; poison = 0; swap = 0; }
        _machine.CheckInvariants();
    }

    // ---- request flags --------------------------------------------------------------------

    // A.5 / H.3: default=REQ_FAULT, mask=REQ_WRITE, one entry REQ_WRITE → that page and the rest
    // of its walk sub-range (up to the PMD boundary) get write faults; the next PMD only reads.
    [Test]
    public void PerEntryWrite_FaultsRestOfSubRangeForWrite_QuirkH3()
    {
        ulong map = Anon(1024);
        ulong boundary = (map + Page.PmdSize) & ~(Page.PmdSize - 1);
        ulong start = boundary - 4 * P;
        for (ulong i = 0; i < 8; i++) _p.Load<byte>(start + i * P);   // zero pages; PTE tables exist
        using var rec = Watch(start, 8 * P);
        var r = Range(rec, start, 8, HmmPfn.ReqFault, HmmPfn.ReqWrite);
        var inputs = new ulong[8];
        inputs[1] = HmmPfn.ReqWrite;
        Mirror(r, inputs, out Errno err);
        Assert.That(err, Is.EqualTo(Errno.Ok));
        Assert.That(r.HmmPfns[0], Is.EqualTo(HmmPfn.Valid | Machine.ZeroPfn), "before the offending entry: untouched zero page");
        for (int i = 1; i < 4; i++)
            Assert.That(r.HmmPfns[i] & (HmmPfn.Valid | HmmPfn.Write), Is.EqualTo(HmmPfn.Valid | HmmPfn.Write), $"entry {i}: write-faulted to the end of the sub-range");
        for (int i = 4; i < 8; i++)
            Assert.That(r.HmmPfns[i], Is.EqualTo(HmmPfn.Valid | Machine.ZeroPfn), $"entry {i}: next PMD, read only");
        Assert.That(rec.Events.Count(e => e.Event == NotifyEvent.Clear), Is.EqualTo(3), "three zero-page COWs");
        _machine.CheckInvariants();
    }

    // B.4 + H.3 on the vectorized path: read-only (COW) present pages need no fault for a read
    // request; the one REQ_WRITE entry drops its group of four to the scalar path and write-faults
    // itself and the rest of the sub-range; outputs before it come from the vector path.
    [Test]
    public void PerEntryWrite_AmongPresentReadOnlyPages_VectorAndScalarAgree()
    {
        ulong buf = Anon(12);
        for (ulong i = 0; i < 12; i++) _p.Store(buf + i * P, (int)i);
        var child = _p.Fork();
        using var rec = Watch(buf, 12 * P);
        var r = Range(rec, buf, 12, HmmPfn.ReqFault, HmmPfn.ReqWrite);
        var inputs = new ulong[12];
        inputs[6] = HmmPfn.ReqWrite;
        inputs[2] = HmmPfn.DmaMapped;
        Mirror(r, inputs, out Errno err);
        Assert.That(err, Is.EqualTo(Errno.Ok));
        for (ulong i = 0; i < 12; i++)
        {
            ulong pfn = PfnAt(buf + i * P);
            ulong sticky = i == 2 ? HmmPfn.DmaMapped : 0;
            if (i < 6)
            {
                Assert.That(pfn, Is.EqualTo(child.Mm.EntryAt(buf + i * P).Pfn), $"entry {i} still shared");
                Assert.That(r.HmmPfns[i], Is.EqualTo(sticky | HmmPfn.Valid | pfn), $"entry {i}");
            }
            else Assert.That(r.HmmPfns[i], Is.EqualTo(HmmPfn.Make(pfn, write: true)), $"entry {i}");
        }
        Assert.That(rec.Events.Count(e => e.Event == NotifyEvent.Clear), Is.EqualTo(6), "COW of entries 6..11");
        child.Exit();
        _machine.CheckInvariants();
    }

    // B.4 hole rule: a hole is faulted from its start with one flag: a single REQ_WRITE entry
    // write-faults the whole hole, entries before it included.
    [Test]
    public void PerEntryWrite_InHole_WriteFaultsWholeHole()
    {
        ulong buf = Anon(8);
        using var rec = Watch(buf, 8 * P);
        var r = Range(rec, buf, 8, HmmPfn.ReqFault, HmmPfn.ReqWrite);
        var inputs = new ulong[8];
        inputs[5] = HmmPfn.ReqWrite;
        Mirror(r, inputs, out Errno err);
        Assert.That(err, Is.EqualTo(Errno.Ok));
        for (int i = 0; i < 8; i++)
            Assert.That(r.HmmPfns[i], Is.EqualTo(HmmPfn.Make(PfnAt(buf + (ulong)i * P), write: true)), $"entry {i}");
        _machine.CheckInvariants();
    }

    // A.5 / HMM-R15 / B.4 shortcut: REQ_WRITE without REQ_FAULT (mask lacks REQ_FAULT) faults nothing.
    [Test]
    public void ReqWriteWithoutReqFault_FaultsNothing()
    {
        ulong buf = Anon(2);
        _p.Load<int>(buf);
        using var rec = Watch(buf, 2 * P);
        var r = Range(rec, buf, 2, 0, HmmPfn.ReqWrite);
        r.HmmPfns[0] = r.HmmPfns[1] = HmmPfn.ReqWrite;
        Assert.That(Attempt(r), Is.EqualTo(Errno.Ok));
        Assert.That(r.HmmPfns, Is.EqualTo(new[] { HmmPfn.Valid | Machine.ZeroPfn, 0UL }));
        Assert.That(rec.Events, Is.Empty);
        _machine.CheckInvariants();
    }

    // A.5: sticky bits preserved in and out; every other bit of the input overwritten.
    [Test]
    public void StickyBits_PreservedOnEveryOutcome()
    {
        ulong buf = Anon(9);
        for (ulong i = 0; i < 8; i++) _p.Store(buf + i * P, 1);   // 8 plain pages: the vector path
        using var rec = Watch(buf, 9 * P);
        var r = Range(rec, buf, 9);
        ulong[] sticky = { HmmPfn.DmaMapped, HmmPfn.P2PDma, HmmPfn.P2PDmaBus, HmmPfn.InOutFlags, 0, HmmPfn.DmaMapped, HmmPfn.P2PDma, HmmPfn.P2PDmaBus, HmmPfn.InOutFlags };
        for (int i = 0; i < 9; i++) r.HmmPfns[i] = sticky[i] | HmmPfn.Error | HmmPfn.OrderMask | 0xABCDE;
        Assert.That(Attempt(r), Is.EqualTo(Errno.Ok));
        for (int i = 0; i < 8; i++)
            Assert.That(r.HmmPfns[i], Is.EqualTo(sticky[i] | HmmPfn.Valid | HmmPfn.Write | PfnAt(buf + (ulong)i * P)), $"entry {i}");
        Assert.That(r.HmmPfns[8], Is.EqualTo(HmmPfn.InOutFlags), "none page: sticky bits only");
        _machine.CheckInvariants();
    }

    // ---- huge mappings --------------------------------------------------------------------

    // B.4 PMD level: THP present → VALID|WRITE with order 9 for every covered entry, pfn = head + offset,
    // also when the range covers only part of the PMD.
    [Test]
    public void Thp_Order9ForEveryEntry_EvenPartialRange()
    {
        ulong map = Anon(1024);
        ulong huge = (map + Page.PmdSize - 1) & ~(Page.PmdSize - 1);
        _p.Madvise(huge, Page.PmdSize, Advice.HugePage);
        _p.Store(huge, 5);
        Pte leaf = _p.Mm.EntryAt(huge);
        Assert.That(leaf.IsHuge, Is.True);
        using var rec = Watch(huge, Page.PmdSize);

        var part = Range(rec, huge + 100 * P, 16);
        part.HmmPfns[3] = HmmPfn.DmaMapped;
        Assert.That(Attempt(part), Is.EqualTo(Errno.Ok));
        for (int i = 0; i < 16; i++)
        {
            ulong w = part.HmmPfns[i];
            Assert.That(HmmPfn.ToMapOrder(w), Is.EqualTo(9));
            Assert.That(w & ~HmmPfn.OrderMask, Is.EqualTo((i == 3 ? HmmPfn.DmaMapped : 0) | HmmPfn.Valid | HmmPfn.Write | (leaf.Pfn + 100 + (ulong)i)));
        }

        var whole = Range(rec, huge, 512, HmmPfn.ReqFault | HmmPfn.ReqWrite);
        Assert.That(Attempt(whole), Is.EqualTo(Errno.Ok));
        for (int i = 0; i < 512; i++) Assert.That(whole.HmmPfns[i], Is.EqualTo(HmmPfn.Make(leaf.Pfn + (ulong)i, true, 9)));
        Assert.That(rec.Events, Is.Empty);
        _machine.CheckInvariants();
    }

    // B.4 hugetlb → order = hstate order (9 for 2 MiB) for every entry.
    [Test]
    public void HugeTlb_Order9()
    {
        ulong h = _p.Mmap(Page.PmdSize, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous | MapFlags.HugeTlb);
        using var rec = Watch(h, Page.PmdSize);
        var r = Range(rec, h + 8 * P, 8, HmmPfn.ReqFault);
        Assert.That(Attempt(r), Is.EqualTo(Errno.Ok), "faulted in by hmm_range_fault");
        Pte leaf = _p.Mm.EntryAt(h);
        Assert.That(leaf.IsHuge, Is.True);
        for (int i = 0; i < 8; i++)
            Assert.That(r.HmmPfns[i], Is.EqualTo(HmmPfn.Make(leaf.Pfn + 8 + (ulong)i, leaf.IsWritable, 9)));
        _machine.CheckInvariants();
    }

    // ---- preconditions --------------------------------------------------------------------

    // HMM-R01: hmm_range_fault without the mmap lock is a kernel bug (mmap_assert_locked).
    [Test]
    public void WithoutMmapLock_IsHmmR01()
    {
        ulong buf = Anon(1);
        using var rec = Watch(buf, P);
        var r = Range(rec, buf, 1);
        r.NotifierSeq = rec.Notifier.ReadBegin();
        var ex = Assert.Throws<KernelBugException>(() => r.Fault());
        Assert.That(ex!.Rule, Is.EqualTo("HMM-R01"));
        _machine.CheckInvariants();
    }

    // HMM-R16: misaligned bounds, empty range, wrong hmm_pfns length.
    [Test]
    public void BadSizes_AreHmmR16()
    {
        ulong buf = Anon(4);
        using var rec = Watch(buf, 4 * P);
        var r = Range(rec, buf, 4);
        r.NotifierSeq = rec.Notifier.ReadBegin();
        _p.Mm.MmapLock.ReadLock();
        try
        {
            r.HmmPfns = new ulong[3];
            Assert.That(Assert.Throws<KernelBugException>(() => r.Fault())!.Rule, Is.EqualTo("HMM-R16"));
            r.HmmPfns = new ulong[4];
            r.Start = buf + 1;
            Assert.That(Assert.Throws<KernelBugException>(() => r.Fault())!.Rule, Is.EqualTo("HMM-R16"));
            r.Start = buf;
            r.End = buf + 4 * P - 8;
            Assert.That(Assert.Throws<KernelBugException>(() => r.Fault())!.Rule, Is.EqualTo("HMM-R16"));
            r.End = buf;
            r.HmmPfns = [];
            Assert.That(Assert.Throws<KernelBugException>(() => r.Fault())!.Rule, Is.EqualTo("HMM-R16"));
            r.End = buf + 4 * P;
            r.HmmPfns = new ulong[4];
            Assert.That(r.Fault(), Is.EqualTo(Errno.Ok), "a good range still works");
        }
        finally { _p.Mm.MmapLock.ReadUnlock(); }
        _machine.CheckInvariants();
    }

    // HMM-R02: the range's notifier must be inserted.
    [Test]
    public void NotInsertedNotifier_IsKernelBug()
    {
        ulong buf = Anon(1);
        var rec = Watch(buf, P);
        var r = Range(rec, buf, 1);
        rec.Dispose();
        _p.Mm.MmapLock.ReadLock();
        try { Assert.That(Assert.Throws<KernelBugException>(() => r.Fault())!.Rule, Is.EqualTo("HMM-R02")); }
        finally { _p.Mm.MmapLock.ReadUnlock(); }
        _machine.CheckInvariants();
    }

    // ---- collision protocol (B.2, B.4 outer loop, HMM-R05/R06) --------------------------------

    // An invalidation between a successful RangeFault and read_retry is caught by read_retry.
    [TestCase(false)]
    [TestCase(true)]
    public void InvalidationAfterRangeFault_ReadRetryIsTrue(bool unmap)
    {
        ulong buf = Anon(4);
        for (ulong i = 0; i < 4; i++) _p.Store(buf + i * P, 1);
        using var rec = Watch(buf, 4 * P);
        var r = Range(rec, buf, 4, HmmPfn.ReqFault);
        ulong seq = rec.Notifier.ReadBegin();
        r.NotifierSeq = seq;
        _p.Mm.MmapLock.ReadLock();
        Errno err = r.Fault();
        _p.Mm.MmapLock.ReadUnlock();   // the kernel loop drops mmap_lock before taking U
        Assert.That(err, Is.EqualTo(Errno.Ok));
        Assert.That(r.HmmPfns, Is.All.Matches<ulong>(w => (w & HmmPfn.Valid) != 0));

        if (unmap) _p.Munmap(buf + 2 * P, P);
        else _p.Mprotect(buf + P, P, Prot.Read);

        // lock U → read_retry: must report the collision so the stale pfns are not programmed.
        Assert.That(rec.Notifier.ReadRetry(seq), Is.True);
        Assert.That(rec.Events, Has.Count.EqualTo(1));
        Assert.That(rec.Events[0].Event, Is.EqualTo(unmap ? NotifyEvent.Unmap : NotifyEvent.ProtectionVma));
        _machine.CheckInvariants();
    }

    // An invalidation after read_begin but before hmm_range_fault: check_retry → -EBUSY.
    [Test]
    public void InvalidationBeforeRangeFault_ReturnsEbusy()
    {
        ulong buf = Anon(4);
        for (ulong i = 0; i < 4; i++) _p.Store(buf + i * P, 1);
        using var rec = Watch(buf, 4 * P);
        var r = Range(rec, buf, 4);
        r.HmmPfns[0] = HmmPfn.DmaMapped;
        r.NotifierSeq = rec.Notifier.ReadBegin();
        _p.Mprotect(buf, P, Prot.Read);
        _p.Mm.MmapLock.ReadLock();
        try { Assert.That(r.Fault(), Is.EqualTo(Errno.EBUSY)); }
        finally { _p.Mm.MmapLock.ReadUnlock(); }
        Assert.That(r.HmmPfns[0], Is.EqualTo(HmmPfn.DmaMapped), "nothing walked");
        // HMM-R05: restart from read_begin; now it succeeds and sees the new protection.
        Assert.That(Attempt(r), Is.EqualTo(Errno.Ok));
        Assert.That(r.HmmPfns[0], Is.EqualTo(HmmPfn.DmaMapped | HmmPfn.Valid | PfnAt(buf)));
        Assert.That(rec.Notifier.ReadRetry(r.NotifierSeq), Is.False);
        _machine.CheckInvariants();
    }

    // Section C canonical loop: converges (faults, COW invalidations and all) within the timeout.
    [Test]
    public void CanonicalRetryLoop_Converges()
    {
        ulong buf = Anon(64);
        for (ulong i = 0; i < 64; i += 2) _p.Store(buf + i * P, (int)i);   // half present, half none
        var child = _p.Fork();                                               // present ones now COW
        using var rec = Watch(buf, 64 * P);
        var r = Range(rec, buf, 64, HmmPfn.ReqFault | HmmPfn.ReqWrite);
        int attempts = Mirror(r, new ulong[64], out Errno err);
        Assert.That(err, Is.EqualTo(Errno.Ok));
        Assert.That(attempts, Is.GreaterThan(1), "the COW faults invalidated the first attempt");
        Assert.That(rec.Notifier.ReadRetry(r.NotifierSeq), Is.False);
        for (ulong i = 0; i < 64; i++)
        {
            Assert.That(r.HmmPfns[i], Is.EqualTo(HmmPfn.Make(PfnAt(buf + i * P), write: true)), $"entry {i}");
            Assert.That(_p.Load<int>(buf + i * P), Is.EqualTo(i % 2 == 0 ? (int)i : 0));
        }
        child.Exit();
        _machine.CheckInvariants();
    }
}
