namespace Hmm.Runtime;

/// <summary>
/// Simulates the kernel's errno values (include/uapi/asm-generic/errno-base.h, errno.h), with
/// kernel numbering. Kernel functions return <c>-EBUSY</c>; simulated kernel APIs return
/// <see cref="EBUSY"/> (the positive value) and <see cref="Ok"/> for success.
/// </summary>
public enum Errno
{
    /// <summary>Success (0).</summary>
    Ok = 0,
    /// <summary>Operation not permitted.</summary>
    EPERM = 1,
    /// <summary>No such file or directory / entry.</summary>
    ENOENT = 2,
    /// <summary>Interrupted system call (fatal signal while sleeping).</summary>
    EINTR = 4,
    /// <summary>I/O error.</summary>
    EIO = 5,
    /// <summary>Bad file descriptor.</summary>
    EBADF = 9,
    /// <summary>Try again (e.g. a failed non-blocking notifier start).</summary>
    EAGAIN = 11,
    /// <summary>Out of memory.</summary>
    ENOMEM = 12,
    /// <summary>Permission denied.</summary>
    EACCES = 13,
    /// <summary>Bad address.</summary>
    EFAULT = 14,
    /// <summary>Device or resource busy (e.g. an hmm_range_fault collision).</summary>
    EBUSY = 16,
    /// <summary>Exists.</summary>
    EEXIST = 17,
    /// <summary>No such device.</summary>
    ENODEV = 19,
    /// <summary>Invalid argument.</summary>
    EINVAL = 22,
    /// <summary>No space left.</summary>
    ENOSPC = 28,
    /// <summary>Value too large for defined data type (e.g. interval notifier range overflow).</summary>
    EOVERFLOW = 75,
    /// <summary>Operation not supported.</summary>
    EOPNOTSUPP = 95,
    /// <summary>Memory page has hardware error.</summary>
    EHWPOISON = 133,
}
