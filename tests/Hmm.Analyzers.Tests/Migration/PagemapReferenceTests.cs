using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Migration;

/// <summary>HMM1041: a reference on another driver's pagemap (get_dev_pagemap) put on every path.</summary>
public sealed class PagemapReferenceTests
{
    private const string Head = """
        class Importer
        {
            private DevPagemap? _peer;
            private long _reads;
            private void Read(DevPagemap p, ulong pfn) => _reads += p.RefCount(pfn);

        """;

    private static Task Verify(string members) => HmmVerifier.VerifyAsync(Head + members + "}\n");

    [Test]
    public Task Error_path_without_put_fires() => Verify("""
            public Errno Touch(Machine machine, ulong pfn)
            {
                var peer = {|HMM1041:DevPagemap.Get(machine, pfn)|};
                if (peer == null) return Errno.EFAULT;
                if (peer.Kind != DevicePageKind.Private) return Errno.EOPNOTSUPP;
                Read(peer, pfn);
                peer.Put();
                return Errno.Ok;
            }

        """);

    [Test]
    public Task Throw_between_get_and_put_fires() => Verify("""
            public void Touch(Machine machine, ulong pfn)
            {
                var peer = {|HMM1041:DevPagemap.Get(machine, pfn)|};
                if (peer is null) return;
                if (peer.IsRemoving) throw new InvalidOperationException("peer going away");
                Read(peer, pfn);
                peer.Put();
            }

        """);

    [Test]
    public Task Helper_two_deep_that_never_puts_fires() => Verify("""
            public void Touch(Machine machine, ulong pfn)
            {
                var peer = {|HMM1041:DevPagemap.Get(machine, pfn)|};
                if (peer != null) Use(peer, pfn);
            }

            private void Use(DevPagemap p, ulong pfn) => Account(p, pfn);
            private void Account(DevPagemap p, ulong pfn) => _reads += p.RefCount(pfn);

        """);

    [Test]
    public Task Put_in_finally_is_silent() => Verify("""
            public Errno Touch(Machine machine, ulong pfn)
            {
                var peer = DevPagemap.Get(machine, pfn);
                if (peer == null) return Errno.EFAULT;
                try
                {
                    if (peer.Kind != DevicePageKind.Private) return Errno.EOPNOTSUPP;
                    Read(peer, pfn);
                    return Errno.Ok;
                }
                finally { peer.Put(); }
            }

        """);

    [Test]
    public Task Put_two_helpers_deep_is_silent() => Verify("""
            public void Touch(Machine machine, ulong pfn)
            {
                var peer = DevPagemap.Get(machine, pfn);
                if (peer != null) Use(peer, pfn);
            }

            private void Use(DevPagemap p, ulong pfn) { Read(p, pfn); Done(p); }
            private static void Done(DevPagemap p) => p.Put();

        """);

    [Test]
    public Task Reference_kept_by_the_importer_is_silent() => Verify("""
            public Errno Attach(Machine machine, ulong pfn)
            {
                var peer = DevPagemap.Get(machine, pfn);
                if (peer == null) return Errno.EFAULT;
                _peer = peer;   // dropped in Detach
                return Errno.Ok;
            }

            public void Detach()
            {
                _peer?.Put();
                _peer = null;
            }

        """);
}
