using Flint.Devices.Legacy;
using Flint.Vmm.Logging;

namespace Flint.Vmm.Builder;

/// <summary>
/// PUT /serial's serial_out_path, opened as Firecracker opens it (open_file_nonblock: read-write, created if missing,
/// O_NONBLOCK; O_APPEND here, as for the log and metrics files): a FIFO nobody drains or a full disk makes the guest's
/// bytes drop (uart.error_count) instead of stalling the vCPU that wrote them. Opened at InstanceStart on the main
/// thread; written from vCPU threads with write(2) only, which their seccomp filter already allows (stdout).
/// </summary>
public sealed class SerialOutFile : Stream, INonBlockingOutput
{
    private readonly NonBlockingFile _file;

    private SerialOutFile(NonBlockingFile file) => _file = file;

    /// <summary>Opens <paramref name="path"/>; throws <see cref="IOException"/> with the OS's words on failure.</summary>
    public static SerialOutFile Open(string path) => new(NonBlockingFile.Open(path));

    public bool TryWrite(ReadOnlySpan<byte> bytes) => _file.Write(bytes) == WriteOutcome.Written;

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (!TryWrite(buffer)) throw new IOException(NonBlockingFile.OsError(_file.LastErrno));
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
    public override void Flush() { }
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) _file.Dispose();
        base.Dispose(disposing);
    }
}
