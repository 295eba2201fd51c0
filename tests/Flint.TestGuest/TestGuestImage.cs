using System.Buffers.Binary;
using System.Reflection;

namespace Flint.TestGuest;

/// <summary>
/// The Flint test guest (tests/testguest): where its ELF is, the disk pattern it checks,
/// its command line options and the serial lines it prints. See tests/testguest/README.md.
/// </summary>
public static class TestGuestImage
{
    // ---- serial protocol (exact lines, '\n' terminated)
    public const string StartLine = "FLINT-TESTGUEST start";
    public const string DonePrefix = "FLINT-TESTGUEST done pass=";
    public const string PassPrefix = "PASS ";
    public const string FailPrefix = "FAIL ";
    public const string BlkIdPrefix = "blk id=";
    public const string PioDonePrefix = "pio done ";

    // ---- test names (PASS <name> / FAIL <name>: <reason>)
    public const string Serial = "serial";
    public const string Blk = "blk";
    public const string BlkInit = "blk-init";
    public const string BlkRead = "blk-read";
    public const string BlkId = "blk-id";
    public const string BlkWrite = "blk-write";
    public const string BlkFlush = "blk-flush";
    public const string BlkRo = "blk-ro";
    public const string BlkUnsupp = "blk-unsupp";
    public const string BlkIrq = "blk-irq";
    public const string Pio = "pio";

    public const string PassSerial = PassPrefix + Serial;
    public const string PassBlk = PassPrefix + Blk;
    public const string PassBlkRo = PassPrefix + BlkRo;
    public const string PassBlkUnsupp = PassPrefix + BlkUnsupp;
    public const string PassPio = PassPrefix + Pio;

    /// <summary>PASS lines of the blk test on a read-write disk offering FLUSH.</summary>
    public static readonly string[] BlkRwPassLines =
        [.. new[] { BlkInit, BlkRead, BlkId, BlkWrite, BlkFlush, BlkUnsupp, BlkIrq, Blk }.Select(Pass)];

    /// <summary>PASS lines of the blk test on a read-only disk.</summary>
    public static readonly string[] BlkRoPassLines =
        [.. new[] { BlkInit, BlkRead, BlkId, BlkRo, BlkUnsupp, BlkIrq, Blk }.Select(Pass)];

    public static string Pass(string name) => PassPrefix + name;
    public static string DoneLine(int pass, int fail) => $"{DonePrefix}{pass} fail={fail}";
    public static string PioDoneLine(long n) => PioDonePrefix + n;

    // ---- command line options
    public const string OptTests = "tg.tests=";       // comma list; default "serial,blk"
    public const string OptPio = "tg.pio=";           // N outb's to PioPort
    public const string OptBootTimer = "tg.boottimer="; // 0|1, default 1
    public const string DefaultTests = "serial,blk";

    /// <summary>Guest options for the kernel cmdline, e.g. "tg.tests=serial,blk,pio tg.pio=100000".</summary>
    public static string Cmdline(string? tests = null, long? pio = null, bool bootTimer = true)
    {
        var parts = new List<string>();
        if (tests != null) parts.Add(OptTests + tests);
        if (pio != null) parts.Add(OptPio + pio.Value);
        if (!bootTimer) parts.Add(OptBootTimer + "0");
        return string.Join(' ', parts);
    }

    // ---- machine facts the guest relies on
    public const ulong LoadAddress = 0x100000;      // PT_LOAD and PVH entry
    public const ulong BootTimerAddress = 0xC000_0000;
    public const byte BootTimerValue = 123;
    public const ushort PioPort = 0x3ff;            // serial scratch register
    public const ushort SerialPort = 0x3f8;

    // ---- disk pattern
    public const int SectorSize = 512;
    /// <summary>Sectors the guest reads and checks (0..7); a disk needs at least this many.</summary>
    public const int CheckedSectors = 8;
    /// <summary>The sector the read-write test overwrites with the write pattern.</summary>
    public const int WriteTestSector = 3;

    /// <summary>Disk pattern: byte j of sector s = (s*7 + j) &amp; 0xff.</summary>
    public static byte DiskPatternByte(long s, int j) => (byte)((s * 7 + j) & 0xff);

    /// <summary>Write pattern: byte j of sector s = (s*13 + j + 1) &amp; 0xff.</summary>
    public static byte WritePatternByte(long s, int j) => (byte)((s * 13 + j + 1) & 0xff);

    /// <summary>Create (or truncate) a disk image of <paramref name="sectors"/> sectors with the disk pattern.</summary>
    public static void WriteDisk(string path, int sectors)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sectors);
        var data = new byte[(long)sectors * SectorSize];
        for (int s = 0; s < sectors; s++)
            for (int j = 0; j < SectorSize; j++)
                data[(long)s * SectorSize + j] = DiskPatternByte(s, j);
        File.WriteAllBytes(path, data);
    }

    public static bool SectorMatchesDiskPattern(byte[] sector, long s) => Matches(sector, s, DiskPatternByte);

    /// <summary>True when <paramref name="sector"/> holds what the guest's write test writes to sector s.</summary>
    public static bool SectorMatchesWritePattern(byte[] sector, int s) => Matches(sector, s, WritePatternByte);

    private static bool Matches(byte[] sector, long s, Func<long, int, byte> pattern)
    {
        if (sector.Length < SectorSize) return false;
        for (int j = 0; j < SectorSize; j++)
            if (sector[j] != pattern(s, j)) return false;
        return true;
    }

    /// <summary>Read sector s of a disk image.</summary>
    public static byte[] ReadSector(string path, long s)
    {
        using var f = File.OpenRead(path);
        var b = new byte[SectorSize];
        f.Position = s * SectorSize;
        f.ReadExactly(b);
        return b;
    }

    // ---- serial output parsing
    public sealed record Result(bool Started, bool Done, int Pass, int Fail, IReadOnlyList<string> Lines, string? BlkId)
    {
        public bool Ok => Started && Done && Fail == 0;
        public bool Has(string line) => Lines.Contains(line);
        public IEnumerable<string> Failures => Lines.Where(l => l.StartsWith(FailPrefix, StringComparison.Ordinal));
    }

    /// <summary>Parse the guest's serial output (tolerates \r and surrounding kernel/VMM noise).</summary>
    public static Result Parse(string serial)
    {
        var lines = serial.Replace("\r", "").Split('\n').Select(l => l.TrimEnd()).ToList();
        bool started = lines.Contains(StartLine);
        int pass = 0, fail = 0;
        bool done = false;
        string? id = null;
        foreach (var l in lines)
        {
            if (l.StartsWith(BlkIdPrefix, StringComparison.Ordinal)) id = l[BlkIdPrefix.Length..];
            if (!l.StartsWith(DonePrefix, StringComparison.Ordinal)) continue;
            var rest = l[DonePrefix.Length..].Split(" fail=");
            if (rest.Length == 2 && int.TryParse(rest[0], out pass) && int.TryParse(rest[1], out fail)) done = true;
        }
        return new Result(started, done, pass, fail, lines, id);
    }

    // ---- locations
    private static readonly Lazy<string> s_sourceDir = new(FindSourceDir);

    /// <summary>tests/testguest (absolute).</summary>
    public static string SourceDir => s_sourceDir.Value;

    /// <summary>Absolute path of tests/testguest/out/testguest.elf (built by this project's build).</summary>
    public static string Path => System.IO.Path.Combine(SourceDir, "out", "testguest.elf");

    /// <summary>tests/testguest/run-qemu.sh.</summary>
    public static string RunQemuScript => System.IO.Path.Combine(SourceDir, "run-qemu.sh");

    /// <summary>The repository root.</summary>
    public static string RepoRoot => System.IO.Path.GetFullPath(System.IO.Path.Combine(SourceDir, "..", ".."));

    /// <summary>&lt;repo&gt;/artifacts/guest: vmlinux + rootfs.ext4 from guest/fetch-or-build.sh.</summary>
    public static string GuestArtifactsDir => System.IO.Path.Combine(RepoRoot, "artifacts", "guest");

    private static string FindSourceDir()
    {
        // 1. baked in at build time
        var baked = typeof(TestGuestImage).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "Flint.TestGuest.SourceDir")?.Value;
        if (!string.IsNullOrEmpty(baked) && File.Exists(System.IO.Path.Combine(baked, "Makefile")))
            return System.IO.Path.GetFullPath(baked);
        // 2. walk up from the assembly / base directory to a folder holding tests/testguest
        foreach (var start in new[] { System.IO.Path.GetDirectoryName(typeof(TestGuestImage).Assembly.Location), AppContext.BaseDirectory })
        {
            for (var d = string.IsNullOrEmpty(start) ? null : new DirectoryInfo(start); d != null; d = d.Parent)
            {
                var cand = System.IO.Path.Combine(d.FullName, "tests", "testguest");
                if (File.Exists(System.IO.Path.Combine(cand, "Makefile")))
                    return cand;
            }
        }
        throw new DirectoryNotFoundException("tests/testguest not found (baked-in path: " + (baked ?? "none") + ")");
    }

    /// <summary>Reads the PVH entry (XEN_ELFNOTE_PHYS32_ENTRY) from an ELF64 file's PT_NOTE segments; null if none.</summary>
    public static uint? ReadPvhEntry(string elfPath)
    {
        var f = File.ReadAllBytes(elfPath);
        if (f.Length < 64 || f[0] != 0x7f || f[1] != (byte)'E' || f[2] != (byte)'L' || f[3] != (byte)'F' || f[4] != 2)
            return null;
        ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(f.AsSpan(32));
        int phentsize = BinaryPrimitives.ReadUInt16LittleEndian(f.AsSpan(54));
        int phnum = BinaryPrimitives.ReadUInt16LittleEndian(f.AsSpan(56));
        for (int i = 0; i < phnum; i++)
        {
            var ph = f.AsSpan((int)phoff + i * phentsize, 56);
            if (BinaryPrimitives.ReadUInt32LittleEndian(ph) != 4) continue; // PT_NOTE
            int off = (int)BinaryPrimitives.ReadUInt64LittleEndian(ph[8..]);
            int size = (int)BinaryPrimitives.ReadUInt64LittleEndian(ph[32..]);
            int pos = off;
            while (pos + 12 <= off + size)
            {
                uint namesz = BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(pos));
                uint descsz = BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(pos + 4));
                uint type = BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(pos + 8));
                int name = pos + 12, desc = name + (int)((namesz + 3) & ~3u);
                if (type == 18 && namesz == 4 && f.AsSpan(name, 3).SequenceEqual("Xen"u8) && descsz >= 4)
                    return BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(desc));
                pos = desc + (int)((descsz + 3) & ~3u);
            }
        }
        return null;
    }
}
