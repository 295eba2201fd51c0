using Flint.Devices.Tests.Mmds;
using Flint.Devices.Tests.Net;
using Flint.Devices.Virtio.Net;

namespace Flint.Devices.Tests.Virtio.Net;

/// <summary>
/// virtio-net transmits the frame its tx limiter was charged for: the chain is read once, so a guest growing the
/// frame descriptor after the charge (from another vCPU) changes neither the bytes sent nor the bytes counted.
/// </summary>
public sealed class NetParseOnceTests
{
    /// <summary>Charges nothing away; on the first charge it runs the race (a second vCPU rewriting the ring).</summary>
    private sealed class RacingLimiter : INetRateLimiter
    {
        public Action? Race;
        public readonly List<ulong> Charged = [];
        public bool Consume(ulong bytes)
        {
            Charged.Add(bytes);
            Interlocked.Exchange(ref Race, null)?.Invoke();
            return true;
        }
        public bool IsBlocked => false;
        public int EventFd => -1;
        public bool OnEvent() => true;
    }

    [Fact]
    public void Frame_grown_after_the_charge_goes_out_as_charged()
    {
        var tx = new RacingLimiter();
        using var h = new NetHarness(tx: tx);
        h.PostRx(8);
        var frame = Frames.ArpRequest(NetHarness.GuestMac, NetnsTap.GuestIpValue, NetnsTap.HostIpValue);
        // Descriptors 0 (virtio header) and 1 (frame); the race makes the frame descriptor 1000 bytes longer.
        tx.Race = () => h.Tx.SetDesc(1, h.Memory.Read<ulong>(h.Tx.Desc + 16), (uint)frame.Length + 1000, 0, 0);
        h.Send(frame);

        Assert.Null(tx.Race);
        Assert.Equal([(ulong)frame.Length], tx.Charged);
        Assert.Equal(1, h.Device.Metrics.TxCount);
        Assert.Equal(frame.Length + NetConstants.VnetHeaderSize, h.Device.Metrics.TxBytesCount); // Firecracker counts the header too
        Assert.NotNull(h.WaitFrame(f => f.Length >= 42 && f[12] == 0x08 && f[13] == 0x06 && f[21] == 2));
    }
}
