using Hmm.Runtime.Mm;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>mmput_async (<see cref="AddressSpace.PutDeferred"/>): the last put queues exit teardown on the system workqueue instead of running it in the caller.</summary>
public class DeferredPutTests
{
    [Test]
    public void LastDeferredPut_UnderTheMmapLock_TearsDownOnlyAfterTheCallerLetsGo()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var mm = p.Mm;
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        p.Store(a, 7);
        Assert.That(mm.TryGet(), Is.True);
        p.Exit();
        Assert.That(mm.IsTornDown, Is.False, "the driver's reference keeps the mm alive");

        // A synchronous Put here would run exit_mmap, which takes the mmap lock for write: self-deadlock.
        mm.MmapLock.ReadLock();
        mm.PutDeferred();
        Assert.That(mm.Users, Is.Zero);
        Assert.That(mm.IsTornDown, Is.False, "teardown cannot run while the caller holds the mmap lock");
        Assert.That(machine.SystemWork.Pending, Is.EqualTo(1));
        mm.MmapLock.ReadUnlock();

        machine.SystemWork.Flush();
        Assert.That(mm.IsTornDown, Is.True);
        Assert.That(mm.RssAnon, Is.Zero);
        Assert.That(machine.SystemWork.Pending, Is.Zero);
        machine.CheckInvariants();
    }

    [Test]
    public void DeferredPut_OfAnotherUsersMm_QueuesNothing()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var mm = p.Mm;
        Assert.That(mm.TryGet(), Is.True);
        mm.PutDeferred();
        Assert.That(machine.SystemWork.Pending, Is.Zero);
        machine.SystemWork.Flush();
        Assert.That(mm.IsTornDown, Is.False);
        Assert.That(mm.Users, Is.EqualTo(1));
        p.Exit();
        Assert.That(mm.IsTornDown, Is.True, "the process's own exit is still the synchronous last put");
        machine.CheckInvariants();
    }

    [Test]
    public void DeferredPut_WithoutAReference_IsAKernelBug()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var mm = p.Mm;
        p.Exit();
        Assert.That(mm.TryGet(), Is.False);
        Assert.Throws<KernelBugException>(mm.PutDeferred);
        machine.CheckInvariants();
    }
}
