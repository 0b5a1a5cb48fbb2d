using System;

namespace Hmm.Runtime.Mm;

/// <summary>
/// Simulates <c>struct mmu_notifier_range</c>: the address range [<see cref="Start"/>,
/// <see cref="End"/>) of <see cref="Mm"/> whose CPU page-table entries are about to change,
/// why (<see cref="Event"/>), and whether callbacks may sleep (<see cref="Blockable"/>).
/// </summary>
public readonly struct NotifierRange
{
    private readonly object? _owner;

    /// <summary>Creates a range (mmu_notifier_range_init / _init_owner).</summary>
    public NotifierRange(AddressSpace mm, ulong start, ulong end, NotifyEvent @event, bool blockable, object? owner = null)
    {
        Mm = mm;
        Start = start;
        End = end;
        Event = @event;
        Blockable = blockable;
        _owner = owner;
    }

    /// <summary>The address space (mm_struct).</summary>
    public AddressSpace Mm { get; }

    /// <summary>First address of the range (inclusive).</summary>
    public ulong Start { get; }

    /// <summary>End of the range (exclusive).</summary>
    public ulong End { get; }

    /// <summary>Why the entries change.</summary>
    public NotifyEvent Event { get; }

    /// <summary>mmu_notifier_range_blockable(): whether callbacks may sleep.</summary>
    public bool Blockable { get; }

    /// <summary>
    /// The owner cookie of a <see cref="NotifyEvent.Migrate"/> (pgmap owner) or
    /// <see cref="NotifyEvent.Exclusive"/> (caller) event. The kernel leaves the field
    /// uninitialised for every other event; the simulator makes reading it then a
    /// <see cref="KernelBugException"/> (rule HMM-R18) instead of returning garbage.
    /// </summary>
    public object? Owner => Event is NotifyEvent.Migrate or NotifyEvent.Exclusive
        ? _owner
        : throw new KernelBugException("HMM-R18", $"NotifierRange.Owner read for a {Event} event; check Event is Migrate or Exclusive first");

    /// <summary>Whether [start, end) intersects this range.</summary>
    public bool Overlaps(ulong start, ulong end) => start < End && Start < end;

    /// <inheritdoc/>
    public override string ToString() => $"{Event} [0x{Start:x}, 0x{End:x}){(Blockable ? "" : " non-blockable")}";
}
