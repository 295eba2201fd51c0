namespace Flint.Devices.Virtio.Net;

/// <summary>virtio-net protocol numbers (virtio 1.x spec 5.1) and the TUN ioctl ABI.</summary>
public static class NetConstants
{
    // Feature bits (spec 5.1.3).
    public const int FeatureCsum = 0;
    public const int FeatureGuestCsum = 1;
    public const int FeatureMac = 5;
    public const int FeatureGuestTso4 = 7;
    public const int FeatureGuestTso6 = 8;
    public const int FeatureGuestUfo = 10;
    public const int FeatureHostTso4 = 11;
    public const int FeatureHostTso6 = 12;
    public const int FeatureHostUfo = 14;
    public const int FeatureMrgRxbuf = 15;

    /// <summary>struct virtio_net_hdr_v1: flags u8, gso_type u8, hdr_len, gso_size, csum_start, csum_offset, num_buffers (u16 each).</summary>
    public const int VnetHeaderSize = 12;

    /// <summary>virtio_net_hdr flags: the checksum at csum_start+csum_offset still has to be completed.</summary>
    public const byte HeaderFlagNeedsCsum = 1;

    /// <summary>Largest frame either way: a 64 KiB GSO frame plus Ethernet and the virtio header (Firecracker's MAX_BUFFER_SIZE).</summary>
    public const int MaxFrameWithHeader = 65562;

    /// <summary>Largest frame without receive offloads: 1500-byte MTU, Ethernet header, a VLAN tag, the virtio header.</summary>
    public const int MaxPlainFrameWithHeader = 1500 + 14 + 4 + VnetHeaderSize;

    /// <summary>Config space: mac[6] then status u16.</summary>
    public const int ConfigMac = 0;
    public const int ConfigStatus = 6;
    public const int ConfigSize = 8;
    public const ushort StatusLinkUp = 1;

    public const int RxQueue = 0;
    public const int TxQueue = 1;

    // linux/if_tun.h
    public const nuint TUNSETIFF = 0x400454ca;
    public const nuint TUNSETOFFLOAD = 0x400454d0;
    public const nuint TUNSETVNETHDRSZ = 0x400454d8;
    public const short IFF_TAP = 0x0002;
    public const short IFF_NO_PI = 0x1000;
    public const short IFF_VNET_HDR = 0x4000;
    public const uint TUN_F_CSUM = 0x01;
    public const uint TUN_F_TSO4 = 0x02;
    public const uint TUN_F_TSO6 = 0x04;
    public const uint TUN_F_UFO = 0x10;

    public const uint EPOLLET = 1u << 31;
}
