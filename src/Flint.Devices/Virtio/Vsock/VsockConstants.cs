namespace Flint.Devices.Virtio.Vsock;

/// <summary>
/// virtio-vsock wire constants (virtio 1.x section 5.10). Every packet starts with a 44-byte little-endian
/// header; RW packets carry <c>len</c> payload bytes after it. Other ops carry none.
/// </summary>
public static class VsockConstants
{
    public const ushort QueueSize = 256;
    public const int RxQueue = 0, TxQueue = 1, EventQueue = 2;

    /// <summary>Well-known CID of the host (the hypervisor side of every guest connection).</summary>
    public const ulong HostCid = 2;

    // Header layout (packed, 44 bytes).
    public const int HeaderSize = 44;
    public const int OffSrcCid = 0, OffDstCid = 8, OffSrcPort = 16, OffDstPort = 20, OffLen = 24, OffType = 28,
        OffOp = 30, OffFlags = 32, OffBufAlloc = 36, OffFwdCnt = 40;

    public const ushort TypeStream = 1;

    public const ushort OpInvalid = 0, OpRequest = 1, OpResponse = 2, OpRst = 3, OpShutdown = 4, OpRw = 5,
        OpCreditUpdate = 6, OpCreditRequest = 7;

    /// <summary>SHUTDOWN flags: the sender will receive no more / send no more.</summary>
    public const uint ShutdownRcv = 1, ShutdownSend = 2;

    /// <summary>Receive buffer we advertise per connection (buf_alloc), and so the most we ever hold for the host socket.</summary>
    public const uint ConnBufAlloc = 256 * 1024;

    /// <summary>Send a CREDIT_UPDATE once the guest's view of our free space drops below this.</summary>
    public const uint CreditUpdateThreshold = 64 * 1024;

    /// <summary>Largest payload we put in one RW packet to the guest (Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE).</summary>
    public const int MaxRxPayload = 64 * 1024;

    /// <summary>Largest payload we accept in one RW packet from the guest.</summary>
    public const uint MaxTxPayload = 64 * 1024;

    public const int MaxConnections = 1024;

    /// <summary>Ephemeral local ports for host-initiated connections start here (Firecracker's range).</summary>
    public const uint FirstEphemeralPort = 1u << 30;

    /// <summary>Standalone RSTs (no connection behind them) waiting for rx buffers; more are dropped and counted.</summary>
    public const int RstQueueCapacity = 256;

    /// <summary>Longest accepted "CONNECT &lt;port&gt;\n" line.</summary>
    public const int MaxConnectLine = 32;

    public const int ConfigSize = 8;
}
