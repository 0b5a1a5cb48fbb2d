using Hmm.Dsl;

namespace Hmm.Samples.Nouveau;

/// <summary>How the fault buffer is flushed before a replay (UVM's fault_buffer_flush_mode_t).</summary>
public enum FaultFlush : byte
{
    /// <summary>No flush.</summary>
    None,
    /// <summary>Discard the entries up to the PUT cached at fetch time (cheap: no register read).</summary>
    CachedPut,
    /// <summary>Re-read PUT and discard everything up to it (stale duplicates of the serviced batch).</summary>
    UpdatePut,
}

/// <summary>What the servicing loop does after a batch: replay or not, flush how, and whether to fetch another batch.</summary>
/// <param name="Replay">Issue a replay now.</param>
/// <param name="Flush">Flush the buffer before the replay.</param>
/// <param name="Continue">Fetch another batch in this bottom half.</param>
public readonly record struct ReplayStep(bool Replay, FaultFlush Flush, bool Continue);

/// <summary>
/// The replay policy of one bottom-half run (uvm_gpu_replayable_faults.c, drivers.md C.1):
/// BLOCK replays after each serviced VA block, BATCH after each batch, BATCH_FLUSH flushes the
/// buffer then replays after each batch (re-reading PUT when more than
/// <c>uvm_perf_fault_replay_update_put_ratio</c> of the batch were duplicates), ONCE replays once
/// after all batches; at most <c>max_batches_per_service</c> batches are serviced per run, a run
/// stops early after <c>max_throttle_per_service</c> batches with throttled faults, and at least
/// one replay is always issued per run so no fault is lost. nouveau (A.4) is BATCH with no caps.
/// A value type with no allocation; the driver keeps one per device.
/// </summary>
public struct ReplayController
{
    private int _batches, _throttledBatches, _replays;

    /// <summary>A controller for <paramref name="policy"/> with UVM's caps.</summary>
    public ReplayController(ReplayPolicy policy, int updatePutRatioPercent = 50, int maxBatchesPerService = 20, int maxThrottledBatchesPerService = 5)
    {
        if (updatePutRatioPercent is < 0 or > 100) throw new ArgumentOutOfRangeException(nameof(updatePutRatioPercent));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBatchesPerService);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxThrottledBatchesPerService);
        Policy = policy;
        UpdatePutRatioPercent = updatePutRatioPercent;
        MaxBatchesPerService = maxBatchesPerService;
        MaxThrottledBatchesPerService = maxThrottledBatchesPerService;
    }

    /// <summary>nouveau's behaviour (A.4): one replay per batch, no flush, no batch cap.</summary>
    public static ReplayController Nouveau => new(ReplayPolicy.Batch, 50, int.MaxValue, int.MaxValue);

    /// <summary>The controller for UVM <paramref name="options"/>.</summary>
    public static ReplayController For(UvmPolicyOptions options) => new(
        options.ReplayPolicy, options.ReplayUpdatePutRatioPercent, options.MaxBatchesPerService, options.MaxThrottledBatchesPerService);

    /// <summary>The replay policy.</summary>
    public ReplayPolicy Policy { get; }

    /// <summary>Duplicate share (percent) above which BATCH_FLUSH re-reads PUT.</summary>
    public int UpdatePutRatioPercent { get; }

    /// <summary>Batches per bottom-half run.</summary>
    public int MaxBatchesPerService { get; }

    /// <summary>Batches with throttled faults after which a run stops.</summary>
    public int MaxThrottledBatchesPerService { get; }

    /// <summary>Batches serviced in the current run.</summary>
    public readonly int Batches => _batches;

    /// <summary>Replays issued in the current run.</summary>
    public readonly int Replays => _replays;

    /// <summary>Starts a bottom-half run.</summary>
    public void BeginService()
    {
        _batches = 0;
        _throttledBatches = 0;
        _replays = 0;
    }

    /// <summary>After one VA block (2 MiB) of a batch was serviced: BLOCK replays here.</summary>
    public bool AfterBlock()
    {
        if (Policy != ReplayPolicy.Block) return false;
        _replays++;
        return true;
    }

    /// <summary>
    /// After a batch of <paramref name="fetched"/> entries, <paramref name="duplicates"/> of which
    /// were duplicates and <paramref name="throttled"/> throttled: the replay, flush and
    /// continuation decision.
    /// </summary>
    public ReplayStep AfterBatch(int fetched, int duplicates, int throttled)
    {
        _batches++;
        if (throttled > 0) _throttledBatches++;
        bool more = _batches < MaxBatchesPerService && _throttledBatches < MaxThrottledBatchesPerService;
        switch (Policy)
        {
            case ReplayPolicy.Batch:
                _replays++;
                return new ReplayStep(true, FaultFlush.None, more);
            case ReplayPolicy.BatchFlush:
                _replays++;
                bool updatePut = fetched > 0 && (long)duplicates * 100 > (long)fetched * UpdatePutRatioPercent;
                return new ReplayStep(true, updatePut ? FaultFlush.UpdatePut : FaultFlush.CachedPut, more);
            default: // BLOCK replayed per block; ONCE waits for the end of the run
                return new ReplayStep(false, FaultFlush.None, more);
        }
    }

    /// <summary>At the end of the run: whether a final replay is due (ONCE, or no replay issued yet — never lose a fault).</summary>
    public bool EndService()
    {
        if (_replays > 0) return false;
        _replays++;
        return true;
    }
}
