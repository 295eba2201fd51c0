namespace Flint.Devices.Virtio.Block;

/// <summary>Firecracker's drive <c>io_engine</c>: how a drive's reads, writes and flushes reach its backing file.</summary>
public enum BlockIoEngine
{
    /// <summary>Blocking pread/pwrite/fdatasync on the event-loop thread, one request at a time (the default).</summary>
    Sync,

    /// <summary>io_uring: requests are submitted and complete later, many in flight, still on the event loop.</summary>
    Async,
}
