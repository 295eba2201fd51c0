namespace Flint.Snapshot;

/// <summary>
/// The constants of Flint's snapshot state file (docs/snapshots.md has the byte layout). A reader refuses any file
/// whose magic, format version or architecture differ from these: state is only ever loaded by the code that wrote
/// its format.
/// </summary>
public static class SnapshotFormat
{
    /// <summary>"FLINTSNP" as 8 ASCII bytes at offset 0.</summary>
    public static ReadOnlySpan<byte> Magic => "FLINTSNP"u8;

    /// <summary>The data format version this build writes and the only one it reads (major.minor.patch).</summary>
    public const ushort VersionMajor = 1, VersionMinor = 0, VersionPatch = 0;

    /// <summary>Printed by --snapshot-version, as Firecracker prints its SNAPSHOT_VERSION ("v" + semver).</summary>
    public static string VersionText => $"v{VersionMajor}.{VersionMinor}.{VersionPatch}";

    /// <summary>The architecture code of an x86_64 snapshot (the only one Flint runs).</summary>
    public const uint ArchX86_64 = 0x8664;

    /// <summary>Magic (8) + version (3 x 2) + reserved (2) + architecture (4) + section count (4).</summary>
    public const int HeaderSize = 24;

    /// <summary>The CRC-64 trailer.</summary>
    public const int TrailerSize = 8;

    /// <summary>
    /// The largest state file a load reads (Firecracker caps deserialization at 10 MB for the same reason: a hostile
    /// or mistaken path must not make the VMM allocate without bound). Guest memory is in the memory file, not here.
    /// </summary>
    public const int MaxFileSize = 16 << 20;

    /// <summary>At most this many sections; far more than a VM has devices.</summary>
    public const int MaxSections = 4096;

    /// <summary>Section names are short ASCII identifiers ("vcpu/0", "virtio/block/rootfs").</summary>
    public const int MaxSectionNameLength = 255;
}
