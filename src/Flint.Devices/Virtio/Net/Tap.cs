using System.Runtime.InteropServices;
using System.Text;
using Flint.Sys;
using static Flint.Devices.Virtio.Net.NetConstants;

namespace Flint.Devices.Virtio.Net;

/// <summary>
/// A host TAP interface opened through /dev/net/tun with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR: every frame read or
/// written carries the 12-byte virtio_net_hdr_v1 in front, the same header the guest uses, so frames pass between
/// the tap and guest buffers untouched. The fd is non-blocking; I/O is readv/writev over caller-provided vectors.
/// An existing tap (created by the user, possibly persistent) is attached; a missing one is created by the kernel
/// when we have CAP_NET_ADMIN and lives as long as this fd.
/// </summary>
// SAFETY: readv/writev/ioctl get pinned buffers or iovecs over validated guest memory, each with its exact length.
public sealed unsafe class Tap : IDisposable
{
    public const int MaxNameLength = 15; // IFNAMSIZ - 1

    [StructLayout(LayoutKind.Sequential, Size = 40)]
    private struct IfReq
    {
        public fixed byte Name[16];
        public short Flags;
    }

    private int _fd;

    private Tap(int fd, string name)
    {
        _fd = fd;
        Name = name;
    }

    public int Fd => _fd;
    public string Name { get; }

    /// <summary>Opens (or creates) the tap <paramref name="name"/>. Throws <see cref="SysException"/> or <see cref="ArgumentException"/>.</summary>
    public static Tap Open(string name)
    {
        int n = Encoding.UTF8.GetByteCount(name);
        if (n == 0 || n > MaxNameLength) throw new ArgumentException($"invalid tap name '{name}' (1-{MaxNameLength} bytes)");
        int fd = Libc.Open("/dev/net/tun", Libc.O_RDWR | Libc.O_NONBLOCK);
        if (fd < 0) throw SysException.Last("open /dev/net/tun");
        try
        {
            var req = new IfReq { Flags = (short)(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR) };
            Encoding.UTF8.GetBytes(name, new Span<byte>(req.Name, 16));
            if (Libc.ioctl(fd, TUNSETIFF, &req) < 0) throw SysException.Last($"TUNSETIFF {name}");
            int hdr = VnetHeaderSize;
            if (Libc.ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) throw SysException.Last("TUNSETVNETHDRSZ");
            var tap = new Tap(fd, name);
            tap.SetOffload(0);
            return tap;
        }
        catch
        {
            Libc.close(fd);
            throw;
        }
    }

    /// <summary>
    /// Which offloads the tap may hand us (TUN_F_*): what the guest accepted on receive (GUEST_CSUM, GUEST_TSO4/6,
    /// GUEST_UFO). Frames with offloads the guest did not take are segmented/checksummed by the host kernel instead.
    /// </summary>
    public void SetOffload(uint tunFlags)
    {
        if (Libc.ioctl_val(_fd, TUNSETOFFLOAD, tunFlags) < 0) throw SysException.Last("TUNSETOFFLOAD");
    }

    /// <summary>The TUN_F_* set matching negotiated virtio-net features.</summary>
    public static uint OffloadsFor(ulong ackedFeatures)
    {
        uint f = 0;
        if ((ackedFeatures & (1UL << FeatureGuestCsum)) != 0)
        {
            f |= TUN_F_CSUM;
            if ((ackedFeatures & (1UL << FeatureGuestTso4)) != 0) f |= TUN_F_TSO4;
            if ((ackedFeatures & (1UL << FeatureGuestTso6)) != 0) f |= TUN_F_TSO6;
            if ((ackedFeatures & (1UL << FeatureGuestUfo)) != 0) f |= TUN_F_UFO;
        }
        return f;
    }

    /// <summary>Reads one frame (header included). Bytes read, 0 when none is waiting (EAGAIN), -errno on error.</summary>
    public nint ReadV(IoVec* iov, int count)
    {
        while (true)
        {
            nint r = Libc.readv(_fd, iov, count);
            if (r >= 0) return r;
            int e = Libc.Errno;
            if (e == Libc.EINTR) continue;
            return e == Libc.EAGAIN ? 0 : -e;
        }
    }

    /// <summary>Writes one frame (header included). Bytes written, or -errno.</summary>
    public nint WriteV(IoVec* iov, int count)
    {
        while (true)
        {
            nint r = Libc.writev(_fd, iov, count);
            if (r >= 0) return r;
            int e = Libc.Errno;
            if (e == Libc.EINTR) continue;
            return -e;
        }
    }

    public nint Read(Span<byte> buf)
    {
        fixed (byte* p = buf)
        {
            var v = new IoVec { Base = p, Len = (nuint)buf.Length };
            return ReadV(&v, 1);
        }
    }

    public nint Write(ReadOnlySpan<byte> buf)
    {
        fixed (byte* p = buf)
        {
            var v = new IoVec { Base = p, Len = (nuint)buf.Length };
            return WriteV(&v, 1);
        }
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) Libc.close(fd);
    }
}
