using Hmm.Generators.Models;

namespace Hmm.Generators;

// The Mirror part's members only the dmirror-style options add (HmmDriver.FaultBatchPages,
// HmmDriver.GenerateSnapshot); kept apart so the fault path's main template stays as it was.
internal static partial class Emitter
{
    // HmmDriver.FaultBatchPages: the piece size of Fault and Snapshot (the default keeps the 2 MiB text).
    private static string BatchBytes(DriverModel m)
        => m.FaultBatchPages == 512 ? "((ulong)" + Page + ".PmdPages << " + Page + ".Shift)" : "((ulong)" + m.FaultBatchPages + " << " + Page + ".Shift)";

    // HmmDriver.GenerateSnapshot: test_hmm's dmirror_range_snapshot without its temporary notifier. The
    // driver's own notifier sets its sequence under U in every MirrorSync mode, so the sequence-retry
    // check is coherent whatever mode the fault path uses.
    private static string EmitSnapshot(DriverModel m)
    {
        if (!m.GenerateSnapshot) return "";
        string u = U(m);
        return $$"""


                /// <summary>
                /// The hmm_pfns of [<paramref name="start"/>, <paramref name="end"/>) into <paramref name="hmmPfns"/>
                /// (one word per page) without faulting anything in and without programming the device table
                /// (HMM_DMIRROR_SNAPSHOT): per piece of {{m.FaultBatchPages}} pages, read_begin → mmap read lock →
                /// hmm_range_fault with no request flags (dev_private_owner = <see cref="PgmapOwner"/>) → unlock;
                /// -EBUSY retries; then under U read_retry (a collision retries) and the words are copied out.
                /// Retries bounded by <see cref="FaultTimeoutMs"/> per piece, then EBUSY. EINVAL when not
                /// attached, the range is empty or unaligned, or <paramref name="hmmPfns"/> is shorter than it;
                /// otherwise what hmm_range_fault returned. A failure leaves the earlier pieces filled.
                /// </summary>
                {{GeneratedCode}}
                {{MayBlock}}
                [global::Hmm.Dsl.Excludes({{Literal(ULockName(m))}})]
                public {{Errno}} Snapshot(ulong start, ulong end, global::System.Span<ulong> hmmPfns)
                {
                    if (__hmmNotifier == null) return {{Errno}}.EINVAL;
                    if (end <= start || !{{Page}}.IsAligned(start) || !{{Page}}.IsAligned(end)) return {{Errno}}.EINVAL;
                    if ((ulong)hmmPfns.Length < ((end - start) >> {{Page}}.Shift)) return {{Errno}}.EINVAL;
                    var mm = Process.Mm;
                    if (!mm.TryGet()) return {{Errno}}.EFAULT;
                    try
                    {
                        for (ulong piece = start, next; piece < end; piece = next)
                        {
                            next = global::System.Math.Min(end, piece + {{BatchBytes(m)}});
                            var range = __HmmRangeFor(piece, next, 0);
                            long deadline = __HmmDeadline();
                            while (true)
                            {
                                if (global::System.Diagnostics.Stopwatch.GetTimestamp() > deadline) return {{Errno}}.EBUSY;
                                global::System.Array.Clear(range.HmmPfns);
                                var e = __HmmSnapshot(mm, range);
                                if (e == {{Errno}}.EBUSY) { __hmmFaultRetries++; continue; }
                                if (e != {{Errno}}.Ok) return e;
                                {{u}}.Lock();
                                try
                                {
                                    if (__hmmNotifier!.ReadRetry(range.NotifierSeq)) { __hmmFaultRetries++; continue; }
                                    new global::System.ReadOnlySpan<ulong>(range.HmmPfns).CopyTo(hmmPfns.Slice((int)((piece - start) >> {{Page}}.Shift)));
                                    break;
                                }
                                finally { {{u}}.Unlock(); }
                            }
                        }
                        return {{Errno}}.Ok;
                    }
                    finally { mm.Put(); }
                }
            """;
    }
}
