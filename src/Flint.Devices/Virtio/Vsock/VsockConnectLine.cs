using Flint.Sys;
using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Devices.Virtio.Vsock;

/// <summary>What reading a host client's CONNECT line gave.</summary>
internal enum VsockConnectLineStatus
{
    /// <summary>No full line yet; wait for more.</summary>
    Incomplete,
    /// <summary>A valid line: the port is known.</summary>
    Complete,
    /// <summary>EOF, a socket error, an over-long or malformed line: close the client.</summary>
    Failed,
}

/// <summary>Firecracker's host-initiated handshake line, <c>CONNECT &lt;port&gt;\n</c>, read from the host client.</summary>
internal static class VsockConnectLine
{
    /// <summary>
    /// Reads what the client sent so far without consuming anything past the newline: the client may write data
    /// right after the line, and those bytes belong to the guest.
    /// </summary>
    public static VsockConnectLineStatus Read(VsockConnection conn, out uint port)
    {
        port = 0;
        var line = conn.Line ??= new byte[MaxConnectLine];
        int room = MaxConnectLine - conn.LineLen;
        Span<byte> peek = stackalloc byte[MaxConnectLine];
        nint n = conn.Stream.Recv(peek[..room], peek: true);
        if (n == -Libc.EAGAIN) return VsockConnectLineStatus.Incomplete;
        if (n <= 0) return VsockConnectLineStatus.Failed;
        int nl = peek[..(int)n].IndexOf((byte)'\n');
        int take = nl >= 0 ? nl + 1 : (int)n;
        if (conn.Stream.Recv(line.AsSpan(conn.LineLen, take), peek: false) != take) return VsockConnectLineStatus.Failed;
        conn.LineLen += take;
        if (nl < 0) return conn.LineLen >= MaxConnectLine ? VsockConnectLineStatus.Failed : VsockConnectLineStatus.Incomplete;
        return TryParse(line.AsSpan(0, conn.LineLen - 1), out port) ? VsockConnectLineStatus.Complete : VsockConnectLineStatus.Failed;
    }

    /// <summary>Parses <c>CONNECT &lt;decimal u32&gt;</c> (the newline already stripped; a trailing CR is allowed).</summary>
    public static bool TryParse(ReadOnlySpan<byte> line, out uint port)
    {
        port = 0;
        if (line.Length > 0 && line[^1] == (byte)'\r') line = line[..^1];
        ReadOnlySpan<byte> prefix = "CONNECT "u8;
        if (!line.StartsWith(prefix)) return false;
        var digits = line[prefix.Length..];
        if (digits.IsEmpty || digits.Length > 10) return false;
        ulong v = 0;
        foreach (byte b in digits)
        {
            if (b < (byte)'0' || b > (byte)'9') return false;
            v = v * 10 + (uint)(b - '0');
        }
        if (v > uint.MaxValue) return false;
        port = (uint)v;
        return true;
    }
}
