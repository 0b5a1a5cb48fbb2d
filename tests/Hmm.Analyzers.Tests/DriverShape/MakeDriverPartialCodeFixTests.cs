using NUnit.Framework;
using static Hmm.Analyzers.Tests.DriverShape.DriverShapeVerifier;

namespace Hmm.Analyzers.Tests.DriverShape;

/// <summary>HMM0001's fix: "make the class partial".</summary>
public sealed class MakeDriverPartialCodeFixTests
{
    [Test]
    public Task AddsPartialAfterTheOtherModifiers()
        => VerifyFixAsync(
            """
            [HmmDriver("m")]
            public sealed class {|HMM0001:M|}
            {
            }
            """,
            """
            [HmmDriver("m")]
            public sealed partial class M
            {
            }
            """);

    [Test]
    public Task AddsPartialToAClassWithoutModifiers()
        => VerifyFixAsync(
            """
            /// <summary>A driver.</summary>
            [HmmDriver("m")]
            class {|HMM0001:M|} { }
            """,
            """
            /// <summary>A driver.</summary>
            [HmmDriver("m")]
            partial class M { }
            """);
}
