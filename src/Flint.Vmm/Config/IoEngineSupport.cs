using Flint.Sys;

namespace Flint.Vmm.Config;

/// <summary>
/// Whether a drive's <c>io_engine</c> can be honoured on this host. Async needs io_uring: where io_uring_setup
/// fails (kernel without it, io_uring_disabled, a container's seccomp policy) the drive is refused with the error
/// Firecracker's PUT /drives gives, its BlockError chain down to the failed syscall.
/// </summary>
public static class IoEngineSupport
{
    /// <summary>Null when <paramref name="ioEngine"/> can be used here; otherwise Firecracker's fault message.</summary>
    public static string? Refusal(string? ioEngine)
    {
        if (ioEngine != "Async") return null;
        int errno = IoUring.Probe();
        if (errno == 0) return null;
        // Rust's io::Error Display for an OS error: strerror text, then the code.
        return "Unable to create the virtio block device: Virtio backend error: Error coming from the IO engine: "
            + $"Async error: IoUring: Error calling io_uring_setup: {Libc.StrError(errno)} (os error {errno})";
    }
}
