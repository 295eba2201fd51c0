namespace Flint.Devices.Virtio.VhostUser;

/// <summary>
/// The vhost-user front-end requests Flint sends (QEMU docs/interop/vhost-user.rst, "Front-end message types"), and
/// the header flag bits. Values are the protocol's; only the requests Firecracker's frontend uses are listed.
/// </summary>
public static class VhostUserRequest
{
    public const uint GetFeatures = 1;
    public const uint SetFeatures = 2;
    public const uint SetOwner = 3;
    public const uint SetMemTable = 5;
    public const uint SetVringNum = 8;
    public const uint SetVringAddr = 9;
    public const uint SetVringBase = 10;
    public const uint SetVringKick = 12;
    public const uint SetVringCall = 13;
    public const uint GetProtocolFeatures = 15;
    public const uint SetProtocolFeatures = 16;
    public const uint SetVringEnable = 18;
    public const uint GetConfig = 24;

    /// <summary>Header flags: bits 0-1 the protocol version (1), bit 2 "this is a reply".</summary>
    public const uint Version = 1, VersionMask = 3, ReplyFlag = 4;

    /// <summary>The message header: request, flags, payload size (each a little-endian u32).</summary>
    public const int HeaderSize = 12;

    /// <summary>The largest payload the spec allows a message (and so the most a reply may claim).</summary>
    public const int MaxPayload = 4096;

    /// <summary>Bit 8 of a SET_VRING_KICK/CALL payload: no fd attached (polling mode). Flint always sends an fd.</summary>
    public const ulong VringNoFdFlag = 0x100;

    /// <summary>Virtio feature bit 30: the backend speaks protocol features (GET/SET_PROTOCOL_FEATURES).</summary>
    public const ulong ProtocolFeaturesBit = 1UL << 30;

    /// <summary>Protocol feature bit 9: GET_CONFIG / SET_CONFIG (device config space comes from the backend).</summary>
    public const ulong ProtocolFeatureConfig = 1UL << 9;

    public static string Name(uint request) => request switch
    {
        GetFeatures => "Get features",
        SetFeatures => "Set features",
        SetOwner => "Set owner",
        SetMemTable => "Set mem table",
        SetVringNum => "Set vring num",
        SetVringAddr => "Set vring addr",
        SetVringBase => "Set vring base",
        SetVringKick => "Set vring kick",
        SetVringCall => "Set vring call",
        GetProtocolFeatures => "Get protocol features",
        SetProtocolFeatures => "Set protocol features",
        SetVringEnable => "Set vring enable",
        GetConfig => "Get config",
        _ => $"Request {request}",
    };
}
