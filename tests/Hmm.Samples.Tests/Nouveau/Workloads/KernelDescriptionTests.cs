using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Samples.Nouveau;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Nouveau.Workloads;

/// <summary>Kernels as data: the op layout the executor runs and the effect a reference model applies.</summary>
public sealed class KernelDescriptionTests
{
    private const ulong Buf = 0x7000_0000;

    [Test]
    public void Streaming_ops_are_coalesced_across_threads()
    {
        var k = new KernelDescription { Base = Buf, Bytes = 64, Threads = 4, OpsPerThread = 2 };
        var p = k.Build();
        Assert.That(p.Starts, Is.EqualTo(new[] { 0, 2, 4, 6 }));
        // Thread 1: op 0 is g = 1, op 1 is g = 1·… + 4·1 = 5.
        Assert.That(p.Ops[2], Is.EqualTo(new DeviceOp(Buf + 8, DeviceAccess.Read, 0)));
        Assert.That(p.Ops[3], Is.EqualTo(new DeviceOp(Buf + 40, DeviceAccess.Read, 0)));
        Assert.That(p.EndOf(3), Is.EqualTo(8));
    }

    [Test]
    public void The_fault_storm_touches_sixteen_distinct_pages_with_ten_thousand_threads()
    {
        var storm = GpuWorkloads.FaultStorm(Buf);
        var p = storm.Build();
        Assert.That(p.Threads, Is.EqualTo(10_000));
        Assert.That(storm.DistinctPages(), Is.EqualTo(16));
        Assert.That(p.Ops[17].Address, Is.EqualTo(Buf + Page.Size));
    }

    [TestCase(1, 512)]
    [TestCase(2, 256)]
    [TestCase(4, 128)]
    [TestCase(8, 64)]
    public void Prefetch_density_touches_one_of_every_k_pages(int k, int pages)
    {
        var d = GpuWorkloads.PrefetchDensity(Buf, k);
        Assert.That(d.DistinctPages(), Is.EqualTo(pages));
        Assert.That(d.Build().Ops[1].Address, Is.EqualTo(Buf + (ulong)k * Page.Size));
    }

    [Test]
    public void Random_addresses_are_aligned_words_inside_the_buffer_and_depend_on_the_seed()
    {
        var a = new KernelDescription { Base = Buf, Bytes = 3 * Page.Size, Threads = 1000, Pattern = KernelPattern.Random, Seed = 1 };
        var b = a with { Seed = 2 };
        int differ = 0;
        for (int g = 0; g < 1000; g++)
        {
            ulong x = a.AddressOf(g);
            Assert.That(x, Is.InRange(Buf, Buf + 3 * Page.Size - 8));
            Assert.That(x % 8, Is.Zero);
            if (x != b.AddressOf(g)) differ++;
        }
        Assert.That(differ, Is.GreaterThan(900));
        Assert.That(a.DistinctPages(), Is.EqualTo(3));
    }

    [Test]
    public void The_reference_model_applies_writes_and_atomics_of_finished_threads_only()
    {
        var model = new Dictionary<ulong, ulong>();
        GpuWorkloads.AtomicCounters(Buf, counters: 4, threads: 10).ApplyTo(model, t => t != 9);
        Assert.That(model[Buf], Is.EqualTo(3UL), "threads 0, 4, 8");
        Assert.That(model[Buf + 8], Is.EqualTo(2UL), "threads 1, 5 (9 failed)");
        GpuWorkloads.WriteEveryPage(Buf, 2 * Page.Size, 42).ApplyTo(model, _ => true);
        Assert.That(model[Buf], Is.EqualTo(42UL));
        Assert.That(model[Buf + Page.Size], Is.EqualTo(42UL));
        GpuWorkloads.ReadEveryPage(Buf, 2 * Page.Size).ApplyTo(model, _ => true);
        Assert.That(model, Has.Count.EqualTo(5));
    }

    [Test]
    public void Invalid_descriptions_are_rejected()
    {
        Assert.Multiple(() =>
        {
            Assert.That(() => new KernelDescription { Base = Buf, Bytes = 8, Threads = 0 }.Build(), Throws.ArgumentException);
            Assert.That(() => new KernelDescription { Base = Buf + 3, Bytes = 8 }.Build(), Throws.ArgumentException);
            Assert.That(() => new KernelDescription { Base = Buf, Bytes = 8, StrideBytes = 12 }.Build(), Throws.ArgumentException);
        });
    }
}
