using Flint.Sys;

namespace Flint.Devices.Virtio.Vsock;

/// <summary>
/// The vsock device's host-side listening socket, bound when the device is configured (PUT /vsock), as Firecracker
/// binds it in VsockUnixBackend::new: a path that cannot be bound is the client's error at once, not at InstanceStart.
/// The muxer takes the fd over (<see cref="Release"/>); until then Dispose closes it and removes the socket file.
/// </summary>
public sealed class VsockListener : IDisposable
{
    private int _fd;

    private VsockListener(string path, int fd)
    {
        Path = path;
        _fd = fd;
    }

    public string Path { get; }

    /// <summary>Binds and listens on <paramref name="path"/>; a file already there is an error, as in Firecracker.</summary>
    /// <exception cref="VsockBindException">Firecracker's UnixBind text: the OS error as Rust's io::Error prints it.</exception>
    public static VsockListener Bind(string path)
    {
        try
        {
            return new VsockListener(path, UnixSockets.Listen(path, removeStale: false));
        }
        catch (ArgumentException)
        {
            // Rust's UnixListener::bind refuses a path that does not fit sun_path before any syscall, with this text.
            throw new VsockBindException(path.Length == 0 ? "No such file or directory (os error 2)" : "path must be shorter than SUN_LEN");
        }
        catch (SysException e)
        {
            throw new VsockBindException($"{Libc.StrError(e.Errno)} (os error {e.Errno})");
        }
    }

    /// <summary>Hands the fd to its new owner, which closes it and removes the file from then on.</summary>
    internal int Release()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        ObjectDisposedException.ThrowIf(fd < 0, this);
        return fd;
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd < 0) return;
        Libc.close(fd);
        UnixSockets.Unlink(Path);
    }
}

/// <summary>The host-side socket could not be bound; the message is the OS error as Firecracker prints it.</summary>
public sealed class VsockBindException(string osError) : Exception(osError)
{
    /// <summary>Firecracker's VsockUnixBackendError::UnixBind inside VsockConfigError::CreateVsockBackend.</summary>
    public string FirecrackerText => $"Cannot create backend for vsock device: Error binding to the host-side Unix socket: {Message}";
}
