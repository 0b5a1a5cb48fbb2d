using System.Numerics;
using System.Runtime.CompilerServices;
using Hmm.Runtime.Memory;

namespace Hmm.Samples.Nouveau;

/// <summary>
/// One bit per 4 KiB page of a 2 MiB VA block (UVM's uvm_page_mask_t over a va_block, 512 pages):
/// a value type of eight 64-bit words, so masks live on the stack and cost no allocation.
/// </summary>
[InlineArray(Words)]
public struct BlockMask
{
    /// <summary>64-bit words in a mask.</summary>
    public const int Words = Page.PmdPages / 64;

    private ulong _word;

    /// <summary>A mask with every page of [<paramref name="first"/>, <paramref name="end"/>) set.</summary>
    public static BlockMask Range(int first, int end)
    {
        var m = default(BlockMask);
        m.Fill(first, end);
        return m;
    }

    /// <summary>Whether page <paramref name="page"/> is set.</summary>
    public readonly bool Test(int page) => (this[page >> 6] & (1UL << (page & 63))) != 0;

    /// <summary>Sets page <paramref name="page"/>.</summary>
    public void Set(int page) => this[page >> 6] |= 1UL << (page & 63);

    /// <summary>Clears page <paramref name="page"/>.</summary>
    public void Clear(int page) => this[page >> 6] &= ~(1UL << (page & 63));

    /// <summary>Sets every page of [<paramref name="first"/>, <paramref name="end"/>).</summary>
    public void Fill(int first, int end)
    {
        for (int p = first; p < end;)
        {
            int w = p >> 6, bit = p & 63;
            int n = Math.Min(64 - bit, end - p);
            ulong bits = n == 64 ? ulong.MaxValue : ((1UL << n) - 1) << bit;
            this[w] |= bits;
            p += n;
        }
    }

    /// <summary>Pages set in [<paramref name="first"/>, <paramref name="end"/>).</summary>
    public readonly int Count(int first, int end)
    {
        int c = 0;
        for (int p = first; p < end;)
        {
            int w = p >> 6, bit = p & 63;
            int n = Math.Min(64 - bit, end - p);
            ulong bits = n == 64 ? ulong.MaxValue : ((1UL << n) - 1) << bit;
            c += BitOperations.PopCount(this[w] & bits);
            p += n;
        }
        return c;
    }

    /// <summary>Pages set.</summary>
    public readonly int Count() => Count(0, Page.PmdPages);

    /// <summary>Whether no page of [<paramref name="first"/>, <paramref name="end"/>) is set.</summary>
    public readonly bool IsEmpty(int first, int end) => Count(first, end) == 0;

    /// <summary>Whether no page is set.</summary>
    public readonly bool IsEmpty()
    {
        for (int w = 0; w < Words; w++) if (this[w] != 0) return false;
        return true;
    }

    /// <summary>this |= <paramref name="other"/>.</summary>
    public void Or(in BlockMask other)
    {
        for (int w = 0; w < Words; w++) this[w] |= other[w];
    }

    /// <summary>this &amp;= <paramref name="other"/>.</summary>
    public void And(in BlockMask other)
    {
        for (int w = 0; w < Words; w++) this[w] &= other[w];
    }

    /// <summary>this &amp;= ~<paramref name="other"/>.</summary>
    public void AndNot(in BlockMask other)
    {
        for (int w = 0; w < Words; w++) this[w] &= ~other[w];
    }

    /// <summary>Whether both masks hold the same pages.</summary>
    public readonly bool SameAs(in BlockMask other)
    {
        for (int w = 0; w < Words; w++) if (this[w] != other[w]) return false;
        return true;
    }
}
