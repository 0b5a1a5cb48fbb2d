namespace Hmm.Runtime.Tests.Support;

/// <summary>
/// Measures bytes allocated on the calling thread by a hot path after warm-up (ARCHITECTURE §8).
/// The JIT's tiering can allocate on the calling thread the first times a method is promoted,
/// which is not the code's allocation; so the path is warmed up, then measured a few times, and
/// the smallest measurement is reported: an allocation the code itself makes shows up in every one.
/// </summary>
internal static class Allocations
{
    public static long Measure(Action cycle, int iterations, int warmups = 200, int attempts = 5)
    {
        for (int i = 0; i < warmups; i++) cycle();
        long best = long.MaxValue;
        for (int a = 0; a < attempts && best != 0; a++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < iterations; i++) cycle();
            best = Math.Min(best, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        return best;
    }
}
