using Hmm.Analyzers.CodeFixes.Flow;
using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.CodeFixes;

/// <summary>HMM1041's fix: the pagemap put moves into a finally (the null guard stays outside).</summary>
public sealed class PagemapPutFixTests
{
    [Test]
    public Task Pagemap_put_moves_into_finally() => HmmFixVerifier<ReleaseInFinallyFixer>.VerifyAsync(compilationEnd: true, before: """
        class Importer
        {
            private long _reads;
            public Errno Touch(Machine machine, ulong pfn)
            {
                var peer = {|HMM1041:DevPagemap.Get(machine, pfn)|};
                if (peer == null) return Errno.EFAULT;
                if (peer.Kind != DevicePageKind.Private) return Errno.EOPNOTSUPP;
                _reads += peer.RefCount(pfn);
                peer.Put();
                return Errno.Ok;
            }
        }
        """, after: """
        class Importer
        {
            private long _reads;
            public Errno Touch(Machine machine, ulong pfn)
            {
                var peer = DevPagemap.Get(machine, pfn);
                if (peer == null) return Errno.EFAULT;
                try
                {
                    if (peer.Kind != DevicePageKind.Private) return Errno.EOPNOTSUPP;
                    _reads += peer.RefCount(pfn);
                }
                finally
                {
                    peer.Put();
                }

                return Errno.Ok;
            }
        }
        """);
}
