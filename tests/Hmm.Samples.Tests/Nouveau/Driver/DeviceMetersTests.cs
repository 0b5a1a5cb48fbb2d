using Hmm.Runtime;
using Hmm.Samples.Nouveau;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Nouveau.Driver;

/// <summary>
/// The GPU's device telemetry (hmm.device.pages_migrated_*) is fed by the generated migration
/// only, once per page moved: it agrees with the driver's own counters (what hmmsim reports) through
/// bind, CPU touch, eviction and unload — nothing is counted twice or missed.
/// </summary>
public sealed class DeviceMetersTests : GpuTestBase
{
    [Test]
    public void Pages_migrated_on_the_device_meters_match_the_driver_counters()
    {
        const int pages = 64;
        ulong buf = Filled(pages);

        Assert.That(Svm.Bind(buf, buf + pages * PageSize), Is.EqualTo(pages));
        Assert.That(P.Load<ulong>(buf + 5 * PageSize), Is.EqualTo(Word(5)), "a CPU touch brings one page back");
        long evicted = Svm.Evict(buf + 32 * PageSize, buf + 48 * PageSize);
        var before = Counters;
        Assert.Multiple(() =>
        {
            Assert.That(evicted, Is.EqualTo(16));
            Assert.That(Device.Meters.PagesMigratedToDevice, Is.EqualTo(pages).And.EqualTo(before.PagesToVram));
            Assert.That(Device.Meters.PagesMigratedFromDevice, Is.EqualTo(1 + 16).And.EqualTo(before.PagesFromVram));
        });

        Assert.That(Svm.Unload(), Is.EqualTo(Errno.Ok));

        var after = Counters;
        Assert.Multiple(() =>
        {
            Assert.That(after.PagesFromVram, Is.EqualTo(pages), "every page came back: touched, evicted, then unloaded");
            Assert.That(Device.Meters.PagesMigratedFromDevice, Is.EqualTo(after.PagesFromVram), "the unload's eviction is counted once");
            Assert.That(Device.Meters.PagesMigratedToDevice, Is.EqualTo(after.PagesToVram));
        });
        for (int i = 0; i < pages; i++) Assert.That(P.Load<ulong>(buf + (ulong)i * PageSize), Is.EqualTo(Word(i)));
        Finish();
    }

    [Test]
    public void Nothing_is_counted_when_nothing_migrates()
    {
        ulong buf = Filled(8);
        Svm.Run(GpuWorkloads.ReadEveryPage(buf, 8 * PageSize));
        Assert.That(Svm.Unload(), Is.EqualTo(Errno.Ok));
        Assert.Multiple(() =>
        {
            Assert.That(Device.Meters.PagesMigratedToDevice, Is.Zero, "nouveau maps in place on a GPU fault");
            Assert.That(Device.Meters.PagesMigratedFromDevice, Is.Zero);
            Assert.That(Counters.PagesToVram, Is.Zero);
        });
        Finish();
    }
}
