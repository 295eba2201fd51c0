using System.IO.Pipes;
using Flint.Sys;

namespace Flint.Devices.Tests.Sys;

/// <summary>The serial console's output stream: plain write(2) on a borrowed fd, nothing buffered, failures as IOException.</summary>
public sealed class FdWriteStreamTests
{
    [Fact]
    public void Writes_every_byte_straight_through_and_never_closes_the_fd()
    {
        using var server = new AnonymousPipeServerStream(PipeDirection.In);
        using var client = new AnonymousPipeClientStream(PipeDirection.Out, server.ClientSafePipeHandle);
        int fd = (int)client.SafePipeHandle.DangerousGetHandle();
        using (var s = new FdWriteStream(fd))
        {
            s.WriteByte((byte)'a');
            s.Write("bc\n"u8);
            s.Write([0, (byte)'d', (byte)'e', 0], 1, 2);
            Assert.False(s.CanRead);
            Assert.False(s.CanSeek);
            Assert.Throws<NotSupportedException>(() => s.Length);
        }
        // Disposing the stream left the fd alone: it still writes.
        client.Write("f"u8);
        var got = new byte[7];
        int n = 0;
        while (n < got.Length) n += server.Read(got, n, got.Length - n);
        Assert.Equal("abc\ndef"u8.ToArray(), got);
    }

    [Fact]
    public void A_write_nobody_can_read_is_an_IOException()
    {
        var server = new AnonymousPipeServerStream(PipeDirection.In);
        using var client = new AnonymousPipeClientStream(PipeDirection.Out, server.ClientSafePipeHandle);
        server.Dispose(); // no reader left: EPIPE (the runtime ignores SIGPIPE)
        var s = new FdWriteStream((int)client.SafePipeHandle.DangerousGetHandle());
        Assert.Throws<IOException>(() => s.WriteByte(1));
    }
}
