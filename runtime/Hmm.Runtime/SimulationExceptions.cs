using System;

namespace Hmm.Runtime;

/// <summary>
/// A simulated system call failed the way Linux returns <c>-errno</c> to user space.
/// Thrown by syscall-like methods (<c>Mmap</c>, <c>Munmap</c>, …); the operation left no
/// partial state behind.
/// </summary>
public sealed class ErrnoException : Exception
{
    /// <summary>Creates the exception for <paramref name="errno"/> with a message saying why.</summary>
    public ErrnoException(Errno errno, string message)
        : base($"{errno}: {message}") => Errno = errno;

    /// <summary>The errno the kernel would have returned (positive value).</summary>
    public Errno Errno { get; }
}

/// <summary>
/// A CPU access the kernel would answer with SIGSEGV: no VMA at the address, or the VMA's
/// protection forbids the access.
/// </summary>
public sealed class SegmentationFault : Exception
{
    /// <summary>Creates the fault for the faulting <paramref name="address"/>.</summary>
    public SegmentationFault(ulong address, bool write, string reason)
        : base($"SIGSEGV at 0x{address:x} ({(write ? "write" : "read")}): {reason}")
    {
        Address = address;
        Write = write;
    }

    /// <summary>The faulting virtual address.</summary>
    public ulong Address { get; }

    /// <summary>Whether the faulting access was a write.</summary>
    public bool Write { get; }
}

/// <summary>
/// A CPU access the kernel would answer with SIGBUS: e.g. a file mapping beyond the end of the
/// file, or a device-private page its driver could not migrate back (VM_FAULT_SIGBUS).
/// </summary>
public sealed class BusError : Exception
{
    /// <summary>Creates the error for the faulting <paramref name="address"/>.</summary>
    public BusError(ulong address, string reason)
        : base($"SIGBUS at 0x{address:x}: {reason}") => Address = address;

    /// <summary>The faulting virtual address.</summary>
    public ulong Address { get; }
}

/// <summary>
/// Misuse the kernel would <c>BUG()</c> or <c>WARN()</c> on: a broken rule of
/// reference/kernel-hmm.md section C (named by <see cref="Rule"/>, e.g. <c>HMM-R01</c>,
/// <c>MIG-R02</c>, <c>NTF-R01</c>), a refcount underflow, an unbalanced invalidation, or a
/// lock-validator report (<c>LOCKDEP</c>).
/// </summary>
public sealed class KernelBugException : Exception
{
    /// <summary>Creates the report for <paramref name="rule"/>.</summary>
    public KernelBugException(string rule, string message)
        : base($"{rule}: {message}") => Rule = rule;

    /// <summary>The rule broken, e.g. <c>HMM-R01</c>.</summary>
    public string Rule { get; }
}
