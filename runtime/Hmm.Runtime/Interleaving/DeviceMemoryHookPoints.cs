using System.ComponentModel;
using System.Runtime.CompilerServices;

namespace Hmm.Runtime.Interleaving;

/// <summary>
/// The test-hook points of the device memory the DSL generator emits (memremap_pages of a chunk,
/// dev_pagemap_ops.page_free): generated code lives in the driver's assembly, so it reaches the
/// runtime's internal <see cref="TestHooks"/> through these. Not for hand-written drivers; when no
/// test installed a hook each costs a static read and a null check.
/// </summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public static class DeviceMemoryHookPoints
{
    /// <summary>A hot-add put the new chunk at <paramref name="firstPfn"/> on the free lists of <paramref name="memory"/> and is about to return.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ChunkPlugged(object memory, ulong firstPfn) => TestHooks.Fire(TestHookPoint.DeviceChunkPlugged, memory, firstPfn);

    /// <summary>page_free of <paramref name="pfn"/> ran the driver's callback and is about to take the free-list lock of <paramref name="memory"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PageFreeing(object memory, ulong pfn) => TestHooks.Fire(TestHookPoint.DevicePageFreeing, memory, pfn);
}
