namespace Flint.Devices.Mmds;

/// <summary>
/// One guest TCP connection to MMDS port 80: a minimal passive endpoint (no options beyond MSS), in-order data only,
/// one HTTP response in flight. The virtio link does not drop frames we queue, but the guest may (memory pressure):
/// what it has not acknowledged within the retransmission timeout is sent again, go-back-N, with the timeout doubling.
/// Slots are preallocated and reused; only the HTTP response bytes are allocated per request.
/// </summary>
internal sealed class MmdsTcpConnection
{
    public bool InUse;
    public readonly byte[] RemoteMac = new byte[6];
    public uint RemoteIp;
    public ushort RemotePort;
    public long CreatedOrder;

    public uint Iss, SndUna, SndNxt, RcvNxt, Irs;
    public ushort PeerWindow;
    public int PeerMss;
    public bool Established;

    public readonly byte[] Rx = new byte[MmdsHttp.MaxRequestBytes];
    public int RxLen;

    public byte[]? Tx;
    public uint TxBase; // sequence number of Tx[0]

    public bool NeedSynAck, NeedAck, FinQueued, FinSent, PeerFin, FreeAfterSend;

    /// <summary>When (the stack's clock, ms) unacknowledged sequence space is sent again; 0 when nothing is in flight.</summary>
    public long RetransmitAtMs;
    public int RtoMs;
    public int Retransmits;

    public void Init(ReadOnlySpan<byte> mac, uint ip, ushort port, uint irs, uint iss, ushort window, int mss, long order)
    {
        InUse = true;
        mac.CopyTo(RemoteMac);
        RemoteIp = ip;
        RemotePort = port;
        Irs = irs;
        RcvNxt = irs + 1;
        Iss = iss;
        SndUna = iss;
        SndNxt = iss + 1;
        PeerWindow = window;
        PeerMss = mss;
        Established = false;
        RxLen = 0;
        Tx = null;
        TxBase = 0;
        NeedSynAck = true;
        NeedAck = FinQueued = FinSent = PeerFin = FreeAfterSend = false;
        CreatedOrder = order;
        RetransmitAtMs = 0;
        RtoMs = MmdsNetworkStack.InitialRtoMs;
        Retransmits = 0;
    }

    public uint TxEnd => Tx == null ? SndNxt : TxBase + (uint)Tx.Length;

    public int Unsent => Tx == null || FinSent ? 0 : (int)(TxEnd - SndNxt);

    /// <summary>Bytes the peer's window still takes.</summary>
    public int WindowLeft
    {
        get
        {
            long left = (long)PeerWindow - (int)(SndNxt - SndUna);
            return left < 0 ? 0 : (int)left;
        }
    }

    public bool HasOutput =>
        InUse && (NeedSynAck || NeedAck || (Established && Unsent > 0 && WindowLeft > 0)
                  || (Established && FinQueued && !FinSent && Unsent == 0));

    public ushort OurWindow => (ushort)(Rx.Length - RxLen);

    /// <summary>Serial-number compare (RFC 1982): a &lt; b.</summary>
    public static bool Lt(uint a, uint b) => (int)(a - b) < 0;
    public static bool Le(uint a, uint b) => (int)(a - b) <= 0;
}
