namespace Hmm.Dsl;

// Lock annotations the analyzers read (ARCHITECTURE §5). They carry no behaviour and depend on
// nothing, so every runtime layer may annotate its own APIs with them. Lock expressions are
// strings: a member name (nameof(_mutex)) or a dotted path from a parameter ("mm.MmapLock").

/// <summary>The annotated field or property may only be accessed with <see cref="Lock"/> held.</summary>
[AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, AllowMultiple = false)]
public sealed class GuardedByAttribute(string @lock) : Attribute
{
    /// <summary>The guarding lock.</summary>
    public string Lock { get; } = @lock;
}

/// <summary>The caller must hold <see cref="Lock"/> exclusively.</summary>
[AttributeUsage(AttributeTargets.Method | AttributeTargets.Constructor, AllowMultiple = true)]
public sealed class RequiresAttribute(string @lock) : Attribute
{
    /// <summary>The lock.</summary>
    public string Lock { get; } = @lock;
}

/// <summary>The caller must hold <see cref="Lock"/> at least shared (e.g. the mmap lock for read).</summary>
[AttributeUsage(AttributeTargets.Method | AttributeTargets.Constructor, AllowMultiple = true)]
public sealed class RequiresSharedAttribute(string @lock) : Attribute
{
    /// <summary>The lock.</summary>
    public string Lock { get; } = @lock;
}

/// <summary>The caller must not hold <see cref="Lock"/> (the method takes it, or waits for its holders).</summary>
[AttributeUsage(AttributeTargets.Method | AttributeTargets.Constructor, AllowMultiple = true)]
public sealed class ExcludesAttribute(string @lock) : Attribute
{
    /// <summary>The lock.</summary>
    public string Lock { get; } = @lock;
}

/// <summary>The method returns with <see cref="Lock"/> held.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class AcquiresAttribute(string @lock) : Attribute
{
    /// <summary>The lock.</summary>
    public string Lock { get; } = @lock;
}

/// <summary>The method releases <see cref="Lock"/>, which the caller held.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class ReleasesAttribute(string @lock) : Attribute
{
    /// <summary>The lock.</summary>
    public string Lock { get; } = @lock;
}

/// <summary>The annotated lock is always taken after <see cref="Lock"/> (a declared lock order).</summary>
[AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, AllowMultiple = true)]
public sealed class AcquiredAfterAttribute(string @lock) : Attribute
{
    /// <summary>The lock taken first.</summary>
    public string Lock { get; } = @lock;
}

/// <summary>The method may sleep: not under a spinlock nor in a non-blockable notifier callback.</summary>
[AttributeUsage(AttributeTargets.Method | AttributeTargets.Constructor, AllowMultiple = false)]
public sealed class MayBlockAttribute : Attribute
{
}
