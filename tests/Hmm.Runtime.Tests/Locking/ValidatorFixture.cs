using Hmm.Runtime.Locking;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Locking;

/// <summary>
/// Base of the fixtures that flip the global lock validator: each test starts with it on (or as
/// <see cref="Validation"/> says) and the previous setting comes back afterwards.
/// </summary>
[NonParallelizable]
public abstract class ValidatorFixture
{
    private bool _wasEnabled;

    /// <summary>The validator setting for each test; null leaves it as it was.</summary>
    protected virtual bool? Validation => true;

    [SetUp]
    public void SaveValidator()
    {
        _wasEnabled = LockValidator.Enabled;
        if (Validation is bool on) LockValidator.Enabled = on;
    }

    [TearDown]
    public void RestoreValidator() => LockValidator.Enabled = _wasEnabled;
}
