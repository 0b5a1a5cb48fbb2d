using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Locking;

public sealed class SmokeTests
{
    [Test]
    public Task Leak() => HmmVerifier.VerifyAsync("""
        class D
        {
            private readonly KernelMutex _m = new("d");
            public int F(bool x)
            {
                {|HMM1004:_m.Lock()|};
                if (x) return 1;
                _m.Unlock();
                return 0;
            }
        }
        """);
}
