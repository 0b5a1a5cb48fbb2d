using NUnit.Framework;

namespace Hmm.Runtime.Tests.Properties;

/// <summary>Shrunk sequences of the device property test that exposed mistakes in its model.</summary>
public class MmDevicePinRegressionTests
{
    /// <summary>
    /// A read-only pin of a MAP_PRIVATE file page pins the page-cache page; GUP unshares only
    /// anonymous pages, so a later write pin COWs the mapping to a new anonymous page while the
    /// first pin keeps the page-cache page. The model once called that "a pinned page moved".
    /// </summary>
    [Test]
    public void ReadPinOfPrivateFilePageThenWritePinCopiesOnWrite()
    {
        MmRunner.Run(new MmCase(true, new Op[]
        {
            new(OpKind.Mmap, 788335996, 678173537, 1628700396, 1441388426, 555178064),
            new(OpKind.Exclusive, 879884242, 1031671683, 1761706199, 970777662, 1733874063),
            new(OpKind.Migrate, 23246914, 1957391682, 321375796, 1262903479, 566670905),
            new(OpKind.Migrate, 47580585, 1678947945, 2020416810, 598248090, 1875646665),
            new(OpKind.Store, 1610339232, 1384770219, 907666950, 2140697875, 280595393),
            new(OpKind.Pin, 188553710, 1056372031, 1716781309, 1767696020, 1339501807),
            new(OpKind.Migrate, 778637085, 2108604756, 1091095734, 1488615044, 1876161469),
            new(OpKind.Migrate, 306060960, 734140056, 443768554, 203041467, 1118565344),
            new(OpKind.Pin, 301987406, 2061870905, 295121498, 2106868784, 1341697478),
        }, Devices: true));
    }
}
