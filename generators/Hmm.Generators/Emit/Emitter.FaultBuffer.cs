using Hmm.Generators.Models;

namespace Hmm.Generators;

internal static partial class Emitter
{
    // Shape of the FaultBuffer part:
    //   partial class D
    //   {
    //       ServiceFaults() — fetch, sort + de-duplicate, coalesce, [FaultPolicy] per range, service,
    //                         replay per ReplayPolicy or cancel the entries of failed ranges
    //       RunToCompletion() — run the device, servicing faults until no thread is parked
    //   }
    private static string EmitFaultBuffer(DriverModel m)
    {
        var fb = m.FaultBuffer!;
        string policy = Call(m, CallbackKind.FaultPolicy, "in range") is { } p
            ? "var action = " + p
            : "var action = global::Hmm.Dsl.FaultAction.MapInPlace;";
        string migrate = m.HasMigration
            ? $$"""
                            case global::Hmm.Dsl.FaultAction.MigrateToDevice:
                            {
                                // Device memory exhausted (ENOMEM) is not a fault error: map in place instead.
                                var e = __HmmMigrate(range.Start, range.End, toDevice: true, out long moved);
                                global::System.Threading.Interlocked.Add(ref __hmmPagesToDevice, moved);
                                if (e != {{Errno}}.Ok && e != {{Errno}}.ENOMEM) return e;
                                return Fault(in range);
                            }
            """
            : "";
        // Replay: Block after each serviced range, Batch/BatchFlush once per batch, Once when drained.
        string replayEach = fb.Replay == 0 ? "\n                if (ok) Device.Replay();" : "";
        // Block replays per range and never reads a per-batch "serviced anything" flag: declaring one
        // would be CS0219 (an error under warnings-as-errors) in the consumer's build.
        string anyDeclared = fb.Replay == 0 ? "" : "\n        bool any = false;";
        string anySet = fb.Replay == 0 ? "" : "\n                any = true;";
        string anySetPage = fb.Replay == 0 ? "\n                            Device.Replay();" : "\n                            any = true;";
        string afterBatch = fb.Replay switch
        {
            1 => "if (any) Device.Replay();",
            2 => """
                if (any)
                {
                    // BatchFlush: entries still queued are duplicates from stalled threads; drop them, one replay re-raises what is still unmapped.
                    while (Device.FetchFaults(__hmmBatch) > 0) { }
                    Device.Replay();
                }
                """,
            3 => "if (any && Device.Faults.Count == 0) Device.Replay();",
            _ => "",
        };
        return $$"""
            partial class {{m.ClassName}}
            {
                /// <summary>Entries fetched, sorted, de-duplicated and coalesced per batch (<c>[FaultBuffer(BatchSize)]</c>).</summary>
                {{GeneratedCode}}
                public const int FaultBatchSize = {{fb.BatchSize}};

                {{GeneratedCode}}
                private readonly global::Hmm.Runtime.Devices.FaultEntry[] __hmmBatch = new global::Hmm.Runtime.Devices.FaultEntry[{{fb.BatchSize}}];
                {{GeneratedCode}}
                private readonly {{FaultRange}}[] __hmmRangesOfBatch = new {{FaultRange}}[{{fb.BatchSize}}];
                {{GeneratedCode}}
                private long __hmmCancelled, __hmmRangesServiced;

                /// <summary>Fault entries cancelled because their range could not be serviced.</summary>
                {{GeneratedCode}}
                public long Cancelled => global::System.Threading.Interlocked.Read(ref __hmmCancelled);

                /// <summary>Coalesced ranges serviced successfully.</summary>
                {{GeneratedCode}}
                public long RangesServiced => global::System.Threading.Interlocked.Read(ref __hmmRangesServiced);

                /// <summary>
                /// Services one batch of the device's replayable fault buffer: fetch up to
                /// <see cref="FaultBatchSize"/> entries, sort and de-duplicate, coalesce into ranges, ask the
                /// <c>[FaultPolicy]</c> callback per range (map in place by default), service it, cancel the
                /// entries of a range that failed, and replay per ReplayPolicy.{{ReplayName(fb.Replay)}}. Returns the
                /// entries fetched (0 when the buffer was empty).
                /// </summary>
                {{GeneratedCode}}
                {{MayBlock}}
                [global::Hmm.Dsl.Excludes({{Literal(ULockName(m))}})]
                public int ServiceFaults()
                {
                    if (__hmmNotifier == null) return 0;
                    var batch = new global::System.Span<global::Hmm.Runtime.Devices.FaultEntry>(__hmmBatch);
                    int n = Device.FetchFaults(batch);
                    if (n == 0) return 0;
                    int unique = global::Hmm.Runtime.Devices.FaultBatch.SortAndDeduplicate(batch.Slice(0, n));
                    int ranges = global::Hmm.Runtime.Devices.FaultBatch.Coalesce(batch.Slice(0, unique), __hmmRangesOfBatch);{{anyDeclared}}
                    // Ranges are built from consecutive unique entries, one page each: range r covers
                    // the entries [first, first + its pages) of the sorted batch.
                    for (int r = 0, first = 0; r < ranges; r++)
                    {
                        var range = __hmmRangesOfBatch[r];
                        int pages = (int)((range.End - range.Start) >> {{Page}}.Shift);
                        bool ok = __HmmServiceRange(in range) == {{Errno}}.Ok;
                        if (ok)
                        {{{anySet}}
                            global::System.Threading.Interlocked.Increment(ref __hmmRangesServiced);{{replayEach}}
                        }
                        else
                        {
                            // A coalesced range fails as a whole (one unmapped page is EFAULT for the walk), but
                            // nouveau services a one-page window per fault and cancels only what fails
                            // (drivers.md A.3/A.4): retry a multi-page range page by page.
                            for (int i = first; i < first + pages; i++)
                            {
                                ref readonly var entry = ref batch[i];
                                if (pages > 1)
                                {
                                    var one = new {{FaultRange}}(entry.Instance, entry.Address, entry.Address + {{Page}}.Size,
                                        entry.Access == global::Hmm.Runtime.Devices.DeviceAccess.Write,
                                        entry.Access == global::Hmm.Runtime.Devices.DeviceAccess.Atomic,
                                        entry.Access == global::Hmm.Runtime.Devices.DeviceAccess.Prefetch);
                                    if (__HmmServiceRange(in one) == {{Errno}}.Ok)
                                    {{{anySetPage}}
                                        continue;
                                    }
                                }
                                Device.Cancel(in entry);
                                global::System.Threading.Interlocked.Increment(ref __hmmCancelled);
                            }
                        }
                        first += pages;
                    }
                    {{afterBatch.Replace("\n", "\n        ")}}
                    return n;
                }

                /// <summary>One coalesced range, as the <c>[FaultPolicy]</c> decides.</summary>
                {{GeneratedCode}}
                private {{Errno}} __HmmServiceRange(in {{FaultRange}} range)
                {
                    {{policy}}
                    switch (action)
                    {
            {{Reindent(migrate, -4, firstLine: true)}}
                        case global::Hmm.Dsl.FaultAction.Exclusive:
                            return MakeExclusive(range.Start, range.End);
                        case global::Hmm.Dsl.FaultAction.Cancel:
                            return {{Errno}}.EFAULT;
                        default:
                            // MapInPlace, and RemoteMap: the device maps the system pages where they are.
                            return Fault(in range);
                    }
                }

                /// <summary>Runs the device until every thread finished or failed, servicing faults in between (bounded by <paramref name="maxRounds"/>).</summary>
                {{GeneratedCode}}
                {{MayBlock}}
                public void RunToCompletion(int maxRounds = 10_000)
                {
                    for (int round = 0; round < maxRounds; round++)
                    {
                        Device.Run();
                        if (Device.Executor.ParkedCount == 0) return;
                        while (ServiceFaults() > 0) { }
                        // Overflowed entries were dropped: replay so their threads fault again.
                        if (Device.Executor.ParkedCount > 0 && Device.Faults.Count == 0) Device.Replay();
                    }
                    throw new global::System.InvalidOperationException({{Literal(m.DriverName + ": device work did not finish")}});
                }
            }
            """;
    }

    private static string ReplayName(int replay) => replay switch
    {
        0 => "Block (a replay after each serviced range)",
        2 => "BatchFlush (flush the buffer, then one replay)",
        3 => "Once (one replay when the buffer is drained)",
        _ => "Batch (one replay per batch that serviced anything)",
    };
}
