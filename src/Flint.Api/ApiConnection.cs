using System.Net.Sockets;

namespace Flint.Api;

/// <summary>One accepted API client: its socket, its input and output buffers, and its deadline.</summary>
internal sealed class ApiConnection(Socket socket, int slot, int initialIn, int initialOut)
{
    public readonly Socket Socket = socket;
    public readonly int Fd = (int)socket.Handle;
    public readonly int Slot = slot;
    public byte[] In = new byte[initialIn];
    public int InStart, InEnd;
    public byte[] Out = new byte[initialOut];
    public int OutStart, OutEnd;
    public long Discard;
    public bool CloseAfterFlush, WantWrite, ContinueSent;

    /// <summary>
    /// When (Environment.TickCount64, ms) this client must have sent its next complete request by. Set at accept and
    /// after each answered request, and never moved by partial input: a client that trickles a request one byte at a
    /// time (slow loris) runs out of time as surely as one that sends nothing.
    /// </summary>
    public long DeadlineMs;

    /// <summary>Nothing half-read, nothing left to send, nothing to discard: the client waits for nothing from us, so
    /// closing the connection loses no request or response.</summary>
    public bool IsIdle => InEnd == InStart && Discard == 0 && OutEnd == OutStart && !CloseAfterFlush;

    public void Compact()
    {
        int n = InEnd - InStart;
        if (n > 0 && InStart > 0) Buffer.BlockCopy(In, InStart, In, 0, n);
        InStart = 0;
        InEnd = n;
    }

    public bool Grow(int limit)
    {
        if (In.Length >= limit) return false;
        Array.Resize(ref In, Math.Min(limit, In.Length * 2));
        return true;
    }
}
