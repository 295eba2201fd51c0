using System.Buffers.Binary;
using System.Text;

namespace Flint.Snapshot;

/// <summary>
/// A snapshot state file: named sections of plain state (vCPUs, VM, devices, configuration) behind a header that
/// says what wrote them, and a CRC-64 over everything before it. <see cref="Parse"/> checks, in this order, the
/// size, the magic, the format version, the architecture, the CRC and then each section's bounds, so a damaged file
/// is refused with one clear reason before any of its state is used.
/// </summary>
public sealed class SnapshotFile
{
    private readonly List<(string Name, byte[] Data)> _sections = [];

    public IReadOnlyList<(string Name, byte[] Data)> Sections => _sections;

    /// <summary>The version the file was written with (equal to this build's after a successful parse).</summary>
    public (ushort Major, ushort Minor, ushort Patch) Version { get; private init; } =
        (SnapshotFormat.VersionMajor, SnapshotFormat.VersionMinor, SnapshotFormat.VersionPatch);

    public void Add(string name, StateWriter body) => Add(name, body.ToArray());

    public void Add(string name, byte[] body)
    {
        if (name.Length == 0 || name.Length > SnapshotFormat.MaxSectionNameLength || !name.All(c => c is > ' ' and < (char)127))
            throw new ArgumentException($"bad section name \"{name}\"");
        if (Has(name)) throw new ArgumentException($"duplicate section \"{name}\"");
        _sections.Add((name, body));
    }

    public bool Has(string name) => _sections.Any(s => s.Name == name);

    /// <summary>A reader over the named section; a missing section is a format error (the file lacks state we need).</summary>
    public StateReader Open(string name)
    {
        foreach (var (n, d) in _sections)
            if (n == name) return new StateReader(name, d);
        throw new SnapshotFormatException($"The snapshot has no {name} section.");
    }

    public IEnumerable<string> SectionNames(string prefix) => _sections.Where(s => s.Name.StartsWith(prefix, StringComparison.Ordinal)).Select(s => s.Name);

    public byte[] Serialize()
    {
        var w = new StateWriter();
        w.Raw(SnapshotFormat.Magic);
        w.U16(SnapshotFormat.VersionMajor);
        w.U16(SnapshotFormat.VersionMinor);
        w.U16(SnapshotFormat.VersionPatch);
        w.U16(0); // reserved
        w.U32(SnapshotFormat.ArchX86_64);
        w.U32((uint)_sections.Count);
        foreach (var (name, data) in _sections)
        {
            w.U16((ushort)name.Length);
            w.Raw(Encoding.ASCII.GetBytes(name));
            w.U32((uint)data.Length);
            w.Raw(data);
        }
        w.U64(Crc64.Compute(w.WrittenSpan));
        return w.ToArray();
    }

    /// <summary>Reads only the version of a state file (--describe-snapshot): size, magic and version checks.</summary>
    public static string DescribeVersion(ReadOnlySpan<byte> file)
    {
        CheckHead(file, checkVersion: false);
        return $"v{BinaryPrimitives.ReadUInt16LittleEndian(file[8..])}.{BinaryPrimitives.ReadUInt16LittleEndian(file[10..])}.{BinaryPrimitives.ReadUInt16LittleEndian(file[12..])}";
    }

    private static void CheckHead(ReadOnlySpan<byte> file, bool checkVersion)
    {
        if (file.Length > SnapshotFormat.MaxFileSize)
            throw new SnapshotFormatException($"Snapshot size exceeds limit of {SnapshotFormat.MaxFileSize} bytes");
        if (file.Length < SnapshotFormat.HeaderSize + SnapshotFormat.TrailerSize)
            throw new SnapshotFormatException($"Snapshot file is truncated: {file.Length} bytes, smaller than its header and CRC.");
        if (!file[..8].SequenceEqual(SnapshotFormat.Magic))
            throw new SnapshotFormatException($"Magic value does not match arch: 0x{BinaryPrimitives.ReadUInt64LittleEndian(file):x16} is not a Flint snapshot state file.");
        if (!checkVersion) return;
        ushort major = BinaryPrimitives.ReadUInt16LittleEndian(file[8..]);
        ushort minor = BinaryPrimitives.ReadUInt16LittleEndian(file[10..]);
        ushort patch = BinaryPrimitives.ReadUInt16LittleEndian(file[12..]);
        // As Firecracker: another major, or a newer minor, cannot be read; a patch level never changes the layout.
        if (major != SnapshotFormat.VersionMajor || minor > SnapshotFormat.VersionMinor)
            throw new SnapshotFormatException($"Invalid data version: {major}.{minor}.{patch}");
        uint arch = BinaryPrimitives.ReadUInt32LittleEndian(file[16..]);
        if (arch != SnapshotFormat.ArchX86_64)
            throw new SnapshotFormatException($"Magic value does not match arch: the snapshot was taken on architecture 0x{arch:x}, this host is x86_64 (0x{SnapshotFormat.ArchX86_64:x}).");
    }

    public static SnapshotFile Parse(byte[] file)
    {
        CheckHead(file, checkVersion: true);
        int bodyEnd = file.Length - SnapshotFormat.TrailerSize;
        ulong stored = BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(bodyEnd));
        if (Crc64.Compute(file.AsSpan(0, bodyEnd)) != stored) throw new SnapshotFormatException("CRC64 validation failed");

        var r = new StateReader("header", file, 0, bodyEnd);
        r.Raw(stackalloc byte[8]);
        var version = (r.U16(), r.U16(), r.U16());
        r.U16();
        r.U32();
        int count = r.Count(SnapshotFormat.MaxSections);
        var snap = new SnapshotFile { Version = version };
        Span<byte> nameBuf = stackalloc byte[SnapshotFormat.MaxSectionNameLength];
        for (int i = 0; i < count; i++)
        {
            int nameLen = r.U16();
            if (nameLen == 0 || nameLen > SnapshotFormat.MaxSectionNameLength)
                throw new SnapshotFormatException($"Section {i} has an invalid name length ({nameLen}).");
            var nameBytes = nameBuf[..nameLen];
            r.Raw(nameBytes);
            foreach (byte b in nameBytes)
                if (b is <= (byte)' ' or >= 127) throw new SnapshotFormatException($"Section {i} has an invalid name.");
            string name = Encoding.ASCII.GetString(nameBytes);
            byte[] data = r.Bytes();
            if (snap.Has(name)) throw new SnapshotFormatException($"Section {name} appears twice.");
            snap._sections.Add((name, data));
        }
        r.ExpectEnd();
        return snap;
    }

    /// <summary>Reads and parses a state file; the size is checked before the file is read.</summary>
    public static SnapshotFile Load(string path) => Parse(ReadBounded(path));

    /// <summary>The whole file, refused before reading when it is larger than <see cref="SnapshotFormat.MaxFileSize"/>.</summary>
    public static byte[] ReadBounded(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.None);
        long len = f.Length;
        if (len > SnapshotFormat.MaxFileSize)
            throw new SnapshotFormatException($"Snapshot size exceeds limit of {SnapshotFormat.MaxFileSize} bytes");
        var buf = new byte[len];
        f.ReadExactly(buf);
        return buf;
    }

    /// <summary>Writes the file (create or truncate) and syncs it, as Firecracker's snapshot_state_to_file does.</summary>
    public void Save(string path)
    {
        byte[] bytes = Serialize();
        using var f = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.None);
        f.Write(bytes);
        f.Flush(flushToDisk: true);
    }
}
