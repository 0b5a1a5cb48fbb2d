using Hmm.Runtime;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;
using HmmPfn = Hmm.Runtime.Mirror.HmmPfn;
using HmmRange = Hmm.Runtime.Mirror.HmmRange;

namespace Hmm.Samples.HmmSim;

/// <summary>A five-minute walk through what the simulator does, printed step by step.</summary>
public static class Tour
{
    private sealed class PrintingMirror(TextWriter output) : IIntervalNotifierOps
    {
        public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
        {
            notifier.SetSeq(curSeq);
            output.WriteLine($"    notifier: {range} (seq {curSeq})");
            return true;
        }
    }

    /// <summary>Runs the tour.</summary>
    public static void Run(TextWriter output)
    {
        using var machine = new Machine(new MachineOptions { SystemMemory = 256L << 20 });
        output.WriteLine($"machine: {machine.TotalPages * 4 / 1024} MiB of RAM, {machine.FreePages} pages free");

        var app = machine.CreateProcess("app");
        ulong buf = app.Mmap(8 << 20, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        output.WriteLine($"mmap 8 MiB anonymous at 0x{buf:x}");

        var mirror = new IntervalNotifier(new PrintingMirror(output));
        mirror.Insert(app.Mm, buf, 8 << 20);
        output.WriteLine("a device mirror registered an interval notifier over the buffer");

        app.Store(buf, 42);
        output.WriteLine($"store 42 at 0x{buf:x}: first-touch fault, entry {app.Mm.EntryAt(buf)}");

        var child = app.Fork();
        output.WriteLine("fork: the parent's writable entries become read-only (PROTECTION_PAGE above)");
        child.Store(buf, 7);
        output.WriteLine($"child writes 7: copy-on-write; parent still reads {app.Load<int>(buf)}, child reads {child.Load<int>(buf)}");
        app.Store(buf, 43);
        output.WriteLine("parent writes 43: its page is no longer shared, so it is reused (no copy, no event)");

        var range = new HmmRange(mirror, buf, buf + (16 * 4096)) { DefaultFlags = HmmPfn.ReqFault };
        Errno result;
        do
        {
            range.NotifierSeq = mirror.ReadBegin();
            app.Mm.MmapLock.ReadLock();
            try { result = range.Fault(); }
            finally { app.Mm.MmapLock.ReadUnlock(); }
        }
        while (result == Errno.EBUSY || mirror.ReadRetry(range.NotifierSeq));
        // The tour only prints two snapshot words to show their encoding: no device mapping is
        // programmed from them, so the ReadRetry-under-U requirement (HMM-R06) does not apply.
#pragma warning disable HMM1012
        output.WriteLine($"hmm_range_fault over 16 pages: {result}; first word 0x{range.HmmPfns[0]:x} (VALID|WRITE|pfn), second 0x{range.HmmPfns[1]:x} (zero page, read-only)");
#pragma warning restore HMM1012

        app.Mprotect(buf, 4096, Prot.Read);
        output.WriteLine("mprotect read-only: PROTECTION_VMA reached the mirror");
        app.Munmap(buf + (4 << 20), 4 << 20);
        output.WriteLine("munmap of the upper half: UNMAP reached the mirror");

        child.Exit();
        mirror.Remove();
        app.Exit();
        machine.CheckInvariants();
        output.WriteLine($"everyone exited: {machine.UsedPages} pages in use, invariants hold");
    }
}
