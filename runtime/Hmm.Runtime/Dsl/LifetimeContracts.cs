namespace Hmm.Dsl;

// Contracts of reference-counted objects freed later through driver code (mmu_notifier_get/put:
// the last put queues free_notifier behind an SRCU grace period). The HMM1050–HMM1053 rules read
// them: a reference kept past its last put, a driver module unloaded while such frees are still
// queued, per-object cleanup placed in a callback that the put path never runs. They carry no
// behaviour.

/// <summary>The role a callback plays in the lifetime of a reference-counted notifier.</summary>
public enum NotifierLifetimeRole
{
    /// <summary><c>release</c>: runs only when the mm exits (or at unregister) while the object is still registered — never after the last put.</summary>
    Release = 0,

    /// <summary><c>alloc_notifier</c>: the ops are used with get/put (the core allocates and frees the object).</summary>
    Alloc = 1,

    /// <summary><c>free_notifier</c>: runs exactly once per object, after the last put: where per-object cleanup belongs.</summary>
    Free = 2,
}

/// <summary>Marks an ops callback with its <see cref="NotifierLifetimeRole"/> (mmu_notifier_ops release / alloc_notifier / free_notifier).</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class NotifierLifetimeAttribute(NotifierLifetimeRole role) : Attribute
{
    /// <summary>The role.</summary>
    public NotifierLifetimeRole Role { get; } = role;
}

/// <summary>
/// The method waits until every deferred free queued by the last release of a reference of kind
/// <see cref="Kind"/> has run (srcu_barrier in mmu_notifier_synchronize). A type that acquires
/// such references must call it on its <see cref="ModuleExitAttribute"/> or Dispose path.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class DrainsDeferredFreesAttribute(string kind) : Attribute
{
    /// <summary>The reference kind ("mmu-notifier").</summary>
    public string Kind { get; } = kind;
}

/// <summary>
/// The driver's module-exit path (module_exit, driver unbind): after it returns the driver's code
/// may be gone, so no deferred callback into it may still be queued.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class ModuleExitAttribute : Attribute
{
}
