using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Samples.Mlx5;
using Hmm.Samples.Nouveau;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Mlx5;

/// <summary>
/// F.4.4 same-hive variant beyond the workload: every migration a hive member starts (toward its
/// VRAM, eviction at unload) unmaps the other members, and the hive is strictly opt-in.
/// </summary>
public sealed class GpuHiveTests
{
    private const int Pages = 16;

    // A maps RAM pages; B binds them to its VRAM (system → device, an event owned by the hive that
    // A's trampoline skips): B's migration must unmap A, whose next pass maps B's VRAM in place.
    [Test]
    public void BindingPagesAnotherMemberMaps_UnmapsThemThere_AndItRemapsThePeersVram()
    {
        using var tb = new Mlx5Testbed(new Mlx5TestbedOptions { Gpus = 2, GpuHive = true });
        var (a, b, hive) = (tb.Gpu!, tb.Gpu2!, tb.Hive!);
        ulong buf = Mlx5Testbed.Map(tb.Server, Pages);
        var data = Mlx5Testbed.Pattern((long)Pages * Page.Size, 31);
        tb.Server.Write(buf, data);
        var first = a.Svm.Run(GpuWorkloads.ReadEveryPage(buf, (ulong)Pages * Page.Size));
        Assert.That(first.FaultsRaised, Is.EqualTo(Pages));
        Assert.That(a.DeviceTable.Lookup(buf, out var t) && t.Aperture == DeviceAperture.System, Is.True);

        Assert.That(b.Svm.Bind(buf, buf + (ulong)Pages * Page.Size), Is.EqualTo(Pages));
        Assert.That(hive.PeerEntriesCleared, Is.EqualTo(Pages), "B's migration cleared A's entries");
        for (int p = 0; p < Pages; p++)
            Assert.That(a.DeviceTable.Lookup(buf + (ulong)p * Page.Size, out _), Is.False, "no stale entry to the old RAM page");

        var again = a.Svm.Run(GpuWorkloads.ReadEveryPage(buf, (ulong)Pages * Page.Size));
        Assert.That(again.FaultsRaised, Is.EqualTo(Pages));
        Assert.That(b.PagesMigratedToSystem, Is.Zero, "same owner: A's faults did not pull B's pages back");
        for (int p = 0; p < Pages; p++)
        {
            Assert.That(a.DeviceTable.Lookup(buf + (ulong)p * Page.Size, out t) && t.Aperture == DeviceAperture.Peer, Is.True);
            Assert.That(a.Device.Executor.ResultOf(p), Is.EqualTo(BitConverter.ToUInt64(data, p * Page.Size)));
        }
        Assert.That(Mlx5Testbed.Matches(tb.Server, buf, data), Is.True);
        tb.Finish();
    }

    // Unloading A evicts its VRAM to RAM; B's peer entries into it go with it and B re-faults into RAM.
    [Test]
    public void UnloadingTheOwner_EvictsItsVram_AndThePeerRefaultsIntoRam()
    {
        using var tb = new Mlx5Testbed(new Mlx5TestbedOptions { Gpus = 2, GpuHive = true });
        var (a, b) = (tb.Gpu!, tb.Gpu2!);
        ulong buf = Mlx5Testbed.Map(tb.Server, Pages);
        var data = Mlx5Testbed.Pattern((long)Pages * Page.Size, 32);
        tb.Server.Write(buf, data);
        Assert.That(a.Svm.Bind(buf, buf + (ulong)Pages * Page.Size), Is.EqualTo(Pages));
        Assert.That(b.Svm.Run(GpuWorkloads.ReadEveryPage(buf, (ulong)Pages * Page.Size)).FaultsRaised, Is.EqualTo(Pages));

        a.Svm.Unload();
        for (int p = 0; p < Pages; p++)
            Assert.That(b.DeviceTable.Lookup(buf + (ulong)p * Page.Size, out _), Is.False);
        var reread = b.Svm.Run(GpuWorkloads.ReadEveryPage(buf, (ulong)Pages * Page.Size));
        Assert.That(reread.FaultsRaised, Is.EqualTo(Pages));
        for (int p = 0; p < Pages; p++)
        {
            Assert.That(b.DeviceTable.Lookup(buf + (ulong)p * Page.Size, out var t) && t.Aperture == DeviceAperture.System, Is.True);
            Assert.That(b.Device.Executor.ResultOf(p), Is.EqualTo(BitConverter.ToUInt64(data, p * Page.Size)));
        }
        Assert.That(Mlx5Testbed.Matches(tb.Server, buf, data), Is.True);
        tb.Finish();
    }

    // Opt-in: without a hive each GPU is its own owner (and a GPU owned elsewhere cannot join a hive).
    [Test]
    public void WithoutAHive_EachGpuIsItsOwnOwner_AndAForeignGpuCannotJoin()
    {
        using var tb = new Mlx5Testbed(new Mlx5TestbedOptions { Gpus = 2 });
        Assert.That(tb.Hive, Is.Null);
        Assert.That(tb.Gpu!.PgmapOwner, Is.SameAs(tb.Gpu));
        Assert.That(tb.Gpu2!.PgmapOwner, Is.SameAs(tb.Gpu2));
        var hive = new GpuHive();
        Assert.That(hive.Join(tb.Gpu), Is.EqualTo(Errno.EINVAL));
        Assert.That(hive.Join(new NouveauGpu(hive: hive)), Is.EqualTo(Errno.EINVAL), "not attached");
        Assert.That(hive.Members, Is.Empty);
        Assert.That(tb.Gpu.Device.PeerAperture, Is.Null);
        tb.Finish();
    }
}
