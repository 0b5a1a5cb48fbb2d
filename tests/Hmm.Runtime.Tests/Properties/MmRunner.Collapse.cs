using Hmm.Runtime.Mm;

namespace Hmm.Runtime.Tests.Properties;

/// <summary>
/// The model of MADV_COLLAPSE's result (mm/khugepaged.c madvise_collapse + madvise_collapse_errno):
/// success only when every whole 2 MiB block of every VMA part ends PMD-mapped; otherwise the errno
/// of the last failed block, EAGAIN for a pinned folio (SCAN_PAGE_COUNT), EINVAL for the rest, ENOMEM
/// when no 2 MiB frame is free. Which PTE is writable, pinned or in coherent memory is placement the
/// model does not track: it reads those from the simulator's entries before the call. Contents are
/// checked by the caller as for every operation (a failed block must read exactly as before).
/// </summary>
internal sealed partial class MmRunner
{
    /// <summary>What the model predicts for one VMA part: every block done, or the failing blocks with their errnos.</summary>
    private sealed class CollapsePrediction
    {
        public readonly List<(ulong Block, Errno Errno, bool MayStop)> Failed = new();
        public bool NoWholeBlock;
    }

    private CollapsePrediction PredictCollapsePart(ModelProc mp, ulong start, ulong end)
    {
        var prediction = new CollapsePrediction();
        ulong hstart = (start + PmdSize - 1) & ~(PmdSize - 1), hend = end & ~(PmdSize - 1);
        if (hstart > hend) { prediction.NoWholeBlock = true; return prediction; }
        for (ulong block = hstart; block < hend; block += PmdSize)
        {
            var head = mp.P.Mm.EntryAt(block);
            if (head.Kind == PteKind.Present && head.IsHuge) continue;   // SCAN_PMD_MAPPED
            Errno? failure = null;
            bool writable = false, nonPresent = false, any = false;
            for (ulong va = block; va < block + PmdSize && failure == null; va += PageSize)
            {
                var (entry, pfn) = SimPage(mp, va);
                if (entry.Kind == PteKind.None) continue;
                any = true;
                if (entry.Kind != PteKind.Present) { nonPresent = true; continue; }
                if (mp.P.Mm.IsZeroPfn(pfn)) continue;
                writable |= entry.IsWritable;
                if (_devices && OnCoherent(mp, va, out _)) failure = Errno.EINVAL;      // SCAN_PAGE_NULL
                else if (_devices && PinnedFolio(mp, va)) failure = Errno.EAGAIN;      // SCAN_PAGE_COUNT
            }
            // An untouched block: SCAN_PMD_NULL / SCAN_PMD_NONE (the latter ends the walk) or, with a
            // page table of holes, SCAN_PAGE_RO. All EINVAL.
            if (failure == null && (!writable || nonPresent)) failure = Errno.EINVAL;
            if (failure != null) prediction.Failed.Add((block, failure.Value, !any));
        }
        return prediction;
    }

    /// <summary>Checks a MADV_COLLAPSE result against the model (fails the run when it diverges).</summary>
    private void CheckCollapse(ModelProc mp, IReadOnlyList<(ulong Start, ulong End)> parts, IReadOnlyList<CollapsePrediction> predictions, Exception? err, string what)
    {
        Count($"{_op.Kind}: {(err is ErrnoException ee0 ? ee0.Errno.ToString() : "ok")}");
        if (err is ErrnoException { Errno: Errno.ENOMEM }) return;   // no free 2 MiB frame: physical, not modelled
        Errno? expected = null;
        bool exact = true;
        var allowed = new HashSet<Errno>();
        for (int i = 0; i < parts.Count && expected == null; i++)
        {
            var prediction = predictions[i];
            if (prediction.NoWholeBlock) { expected = Errno.EINVAL; allowed.Add(Errno.EINVAL); break; }
            if (prediction.Failed.Count == 0) continue;
            // The last failure is reported unless the walk stopped earlier at an empty PMD slot.
            expected = prediction.Failed[^1].Errno;
            for (int j = 0; j < prediction.Failed.Count; j++)
            {
                allowed.Add(prediction.Failed[j].Errno);
                if (prediction.Failed[j].MayStop && j < prediction.Failed.Count - 1) exact = false;
            }
            foreach (var f in prediction.Failed)
                if (mp.P.Mm.EntryAt(f.Block) is { Kind: PteKind.Present, IsHuge: true })
                    Fail($"{what}: block 0x{f.Block:x} was expected to fail ({f.Errno}) but is now PMD-mapped");
        }
        if (expected == null)
        {
            if (err != null) Fail($"{what}: model expects success, simulator gave {Describe(err)}");
            return;
        }
        if (err is not ErrnoException ee) { Fail($"{what}: model expects {expected}, simulator succeeded"); return; }
        if (exact ? ee.Errno != expected : !allowed.Contains(ee.Errno))
            Fail($"{what}: model expects {(exact ? expected.ToString() : string.Join("/", allowed))}, simulator gave {Describe(err)}");
    }
}
