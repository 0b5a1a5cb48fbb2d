using Hmm.Samples.Nouveau;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Nouveau.Policy;

/// <summary>The 2 MiB root-chunk LRU of UVM's eviction (drivers.md C.6).</summary>
public sealed class ChunkLruTests
{
    private static int[] Order(ChunkLru lru)
    {
        var o = new int[lru.Count];
        lru.CopyOrder(o);
        return o;
    }

    [Test]
    public void The_victim_is_the_least_recently_used_chunk()
    {
        var lru = new ChunkLru(8);
        foreach (int c in new[] { 3, 1, 4, 5 }) lru.Touch(c);
        lru.Touch(1);
        Assert.That(Order(lru), Is.EqualTo(new[] { 3, 4, 5, 1 }));
        Assert.That(lru.TryPickVictim(out int v), Is.True);
        Assert.That(v, Is.EqualTo(3));
    }

    [Test]
    public void Pinned_chunks_are_skipped_and_unpinning_makes_them_most_recent()
    {
        var lru = new ChunkLru(4);
        foreach (int c in new[] { 0, 1, 2 }) lru.Touch(c);
        lru.Pin(0);
        Assert.That(lru.TryPickVictim(out int v) && v == 1, Is.True);
        lru.Unpin(0);
        Assert.That(Order(lru), Is.EqualTo(new[] { 1, 2, 0 }));
    }

    [Test]
    public void Removing_chunks_empties_the_list_and_no_victim_remains()
    {
        var lru = new ChunkLru(2);
        lru.Touch(0);
        lru.Touch(1);
        lru.Remove(0);
        lru.Remove(0);
        Assert.That(lru.Count, Is.EqualTo(1));
        lru.Pin(1);
        Assert.That(lru.TryPickVictim(out _), Is.False, "only a pinned chunk left");
        lru.Remove(1);
        Assert.That(lru.Count, Is.Zero);
        Assert.That(lru.Oldest, Is.EqualTo(-1));
        Assert.That(lru.TryPickVictim(out _), Is.False);
    }
}
