namespace Hmm.Runtime.Mm;

public sealed partial class Machine
{
    /// <summary>The system workqueue (system_wq): deferred work such as <see cref="AddressSpace.PutDeferred"/>'s teardown.</summary>
    public SystemWorkqueue SystemWork { get; } = new();
}
