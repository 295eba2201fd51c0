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

    // new tests (tg.tests=rng,balloon,net,vsock; see tests/testguest/README.md)
    public const string Rng = "rng";
    public const string Balloon = "balloon";
    public const string BalloonStatsPosted = "balloon-stats-posted";
    public const string BalloonInflate = "balloon-inflate";
    public const string BalloonDeflate = "balloon-deflate";
    public const string BalloonDiscarded = "balloon-discarded";
    public const string BalloonReport = "balloon-report";   // free page reporting: the reported 8 MiB read back 0
    public const string BalloonHint = "balloon-hint";       // a free page hinting run: the hinted 8 MiB read 0 after DONE
    // tg.balloon.host=<ms>: the guest's lines at the points where the host acts (balloon.c)
    public const string BalloonReportPatterned = "balloon-report patterned mib=8"; // then waits for a config change
    public const string BalloonReportReturned = "balloon-report returned";         // reported; waits for another
    public const string BalloonHintPatterned = "balloon-hint patterned mib=8";     // waits for a hinting run
    public const string BalloonHintStopped = "balloon-hint stopped";               // STOP sent; waits for DONE
    public const int BalloonFreePageMib = 8;                                        // reported / hinted
    public const string Net = "net";
    public const string NetArp = "net-arp";
    public const string NetPingServed = "net-ping-served";   // "PASS net-ping-served <count>"
    public const string MmdsV1 = "mmds-v1";
    public const string MmdsV2 = "mmds-v2";
    public const string MmdsV2Unauthorized = "mmds-v2-401";
    public const string Vsock = "vsock";
    public const string VsockConnect = "vsock-connect";
    public const string VsockEcho = "vsock-echo";
    public const string VsockAccept = "vsock-accept";

    public const string PassSerial = PassPrefix + Serial;
    public const string PassBlk = PassPrefix + Blk;
    public const string PassBlkRo = PassPrefix + BlkRo;
    public const string PassBlkUnsupp = PassPrefix + BlkUnsupp;
    public const string PassPio = PassPrefix + Pio;
    public const string PassRng = PassPrefix + Rng;
    public const string PassBalloonStatsPosted = PassPrefix + BalloonStatsPosted;
    public const string PassBalloonInflate = PassPrefix + BalloonInflate;
    public const string PassBalloonDeflate = PassPrefix + BalloonDeflate;
    public const string PassBalloonDiscarded = PassPrefix + BalloonDiscarded;
    public const string PassNetArp = PassPrefix + NetArp;
    public const string PassNetPingServedPrefix = PassPrefix + NetPingServed + " ";
    public const string PassMmdsV1 = PassPrefix + MmdsV1;
    public const string PassMmdsV2 = PassPrefix + MmdsV2;
    public const string PassMmdsV2Unauthorized = PassPrefix + MmdsV2Unauthorized;
    public const string PassVsockConnect = PassPrefix + VsockConnect;
    public const string PassVsockEcho = PassPrefix + VsockEcho;
    public const string PassVsockAccept = PassPrefix + VsockAccept;

    // info lines of the new tests
    public const string NetArpReplyPrefix = "net arp-reply ";     // + host MAC (aa:bb:..)
    public const string NetServingPingLine = "net serving ping";  // the host may ping from now on
    public const string MmdsArpReplyPrefix = "mmds arp-reply ";
    public const string MmdsTokenPrefix = "mmds token ";          // + "<len> bytes"
    public const string MmdsPrefix = "mmds ";                     // "mmds <status> <first line of body>"
    public const string VsockGotPrefix = "vsock got ";
    public const string VsockListeningPrefix = "vsock listening ";// + port: the host may connect now
    public const string VsockAcceptGotPrefix = "vsock accept got ";
    public const string BalloonNotZeroPrefix = "balloon page not zero";
    public const string AgentListeningPrefix = "agent listening "; // + "<port> handler=<name>": the host may connect
    public const string AgentConnectionPrefix = "agent connection "; // + n, per accepted connection
    public const string VsockPing = "ping\n";                     // what the guest sends on connect

    /// <summary>"PASS net-ping-served &lt;count&gt;".</summary>
    public static string PassNetPingServed(int count) => PassNetPingServedPrefix + count;
    public static string VsockListeningLine(uint port) => VsockListeningPrefix + port;

    /// <summary>PASS lines of the balloon test (stats: STATS_VQ offered; discarded: the host discards inflated pages).</summary>
    public static string[] BalloonPassLines(bool stats, bool discarded = true) =>
        [.. new[] { stats ? BalloonStatsPosted : null, BalloonInflate, BalloonDeflate, discarded ? BalloonDiscarded : null }
            .OfType<string>().Select(Pass)];

    /// <summary>PASS lines of the net test (without "PASS net-ping-served n", see <see cref="PassNetPingServed"/>).</summary>
    public static string[] NetPassLines(bool mmds = false, bool mmdsV2 = false) =>
        [.. new[] { NetArp }.Concat(!mmds ? [] : mmdsV2 ? [MmdsV2, MmdsV2Unauthorized] : [MmdsV1]).Select(Pass)];

    /// <summary>PASS lines of the vsock test.</summary>
    public static string[] VsockPassLines(bool connect = true, bool accept = false) =>
        [.. (connect ? new[] { VsockConnect, VsockEcho } : []).Concat(accept ? [VsockAccept] : []).Select(Pass)];

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
    public const string OptTimeout = "tg.timeout=";           // ms per wait, default 5000
    public const string OptTscKhz = "tg.tsc_khz=";
    public const string OptBalloonWait = "tg.balloon.wait=";  // ms to wait for num_pages != 0
    public const string OptBalloonPages = "tg.balloon.pages=";// pages when num_pages is 0 (256)
    public const string OptBalloonStrict = "tg.balloon.strict=";
    public const string OptBalloonHost = "tg.balloon.host=";  // ms the guest waits for the host at each free page step
    public const string OptNetIp = "tg.net.ip=";
    public const string OptNetHostIp = "tg.net.hostip=";
    public const string OptNetPingWait = "tg.net.pingwait=";  // N x 1 ms
    public const string OptNetPingCount = "tg.net.pingcount=";
    public const string OptMmds = "tg.mmds=";
    public const string OptMmdsV2 = "tg.mmds.v2=";
    public const string OptMmdsIp = "tg.mmds.ip=";
    public const string OptMmdsPath = "tg.mmds.path=";
    public const string OptVsockPort = "tg.vsock.port=";
    public const string OptVsockListen = "tg.vsock.listen=";
    public const string OptVsockListenWait = "tg.vsock.listenwait=";
    public const string OptAgent = "tg.agent=";                 // vsock port: serve the agent protocol after the tests
    public const string OptAgentHandler = "tg.agent.handler=";  // upper (default) | sum | fail | hang | garbage

    // defaults of the new tests
    public const string DefaultGuestIp = "172.16.0.2";
    public const string DefaultHostIp = "172.16.0.1";
    public const string DefaultMmdsIp = "169.254.169.254";
    public const string DefaultMmdsPath = "/latest/meta-data/";
    public const string DefaultGuestMac = "06:00:ac:10:00:02";  // when VIRTIO_NET_F_MAC is not offered
    public const uint DefaultVsockPort = 52;
    public const uint VsockHostCid = 2;
    public const uint VsockGuestPort = 49152;                   // source port of the guest's connect
    public const uint VsockBufAlloc = 65536;
    public const int DefaultTimeoutMs = 5000;
    public const int BalloonMaxPages = 4096;                    // the guest's pool: at most 16 MiB
    public const int DefaultBalloonPages = 256;

    /// <summary>Guest options for the kernel cmdline, e.g. "tg.tests=serial,blk,pio tg.pio=100000".</summary>
    public static string Cmdline(string? tests = null, long? pio = null, bool bootTimer = true)
    {
        var parts = new List<string>();
        if (tests != null) parts.Add(OptTests + tests);
        if (pio != null) parts.Add(OptPio + pio.Value);
        if (!bootTimer) parts.Add(OptBootTimer + "0");
        return string.Join(' ', parts);
    }

    /// <summary>Start a cmdline for the new tests: <c>TestGuestImage.Build().Net(pingWaitMs: 5000).Mmds(v2: true).ToString()</c>.</summary>
    public static CmdlineBuilder Build() => new();

    /// <summary>
    /// Builds the guest part of a kernel cmdline. The test methods (Rng, Balloon, Net, Mmds,
    /// Vsock) add their test to tg.tests; Tests() adds names explicitly. Output order:
    /// tg.tests first, then options in call order.
    /// </summary>
    public sealed class CmdlineBuilder
    {
        private readonly List<string> _tests = [];
        private readonly List<string> _opts = [];

        public CmdlineBuilder Tests(params string[] names)
        {
            foreach (var n in names)
                if (!_tests.Contains(n)) _tests.Add(n);
            return this;
        }

        /// <summary>Any option: key with or without the trailing '='.</summary>
        public CmdlineBuilder Option(string key, object value)
        {
            if (!key.EndsWith('=')) key += "=";
            _opts.RemoveAll(o => o.StartsWith(key, StringComparison.Ordinal));
            _opts.Add(key + Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture));
            return this;
        }

        public CmdlineBuilder BootTimer(bool on) => Option(OptBootTimer, on ? 1 : 0);
        public CmdlineBuilder Timeout(int ms) => Option(OptTimeout, ms);
        public CmdlineBuilder TscKhz(ulong khz) => Option(OptTscKhz, khz);
        public CmdlineBuilder Pio(long n) => Tests(TestGuestImage.Pio).Option(OptPio, n);

        /// <summary>virtio_mmio.device=&lt;size&gt;@&lt;base&gt;:&lt;irq&gt; (for a VMM that doesn't append its own).</summary>
        public CmdlineBuilder VirtioMmioDevice(ulong size, ulong mmioBase, uint irq)
        {
            _opts.Add($"virtio_mmio.device={size}@0x{mmioBase:x}:{irq}");
            return this;
        }

        public CmdlineBuilder Rng() => Tests(TestGuestImage.Rng);

        /// <param name="hostMs">Free page reporting and hinting wait up to this long for the host at each step
        /// (see <see cref="BalloonReportPatterned"/>); a hinting run happens only with it.</param>
        public CmdlineBuilder Balloon(int? waitMs = null, int? pages = null, bool strict = true, int? hostMs = null)
        {
            Tests(TestGuestImage.Balloon);
            if (waitMs != null) Option(OptBalloonWait, waitMs.Value);
            if (pages != null) Option(OptBalloonPages, pages.Value);
            if (!strict) Option(OptBalloonStrict, 0);
            if (hostMs != null) Option(OptBalloonHost, hostMs.Value);
            return this;
        }

        public CmdlineBuilder Net(string? ip = null, string? hostIp = null, int pingWaitMs = 0, int pingCount = 0)
        {
            Tests(TestGuestImage.Net);
            if (ip != null) Option(OptNetIp, ip);
            if (hostIp != null) Option(OptNetHostIp, hostIp);
            if (pingWaitMs > 0) Option(OptNetPingWait, pingWaitMs);
            if (pingCount > 0) Option(OptNetPingCount, pingCount);
            return this;
        }

        public CmdlineBuilder Mmds(bool v2 = false, string? ip = null, string? path = null)
        {
            Tests(TestGuestImage.Net).Option(OptMmds, 1);
            if (v2) Option(OptMmdsV2, 1);
            if (ip != null) Option(OptMmdsIp, ip);
            if (path != null) Option(OptMmdsPath, path);
            return this;
        }

        /// <summary>port: guest-initiated connect to CID 2 (null = default 52, 0 = skip); listen: accept one host connection.</summary>
        public CmdlineBuilder Vsock(uint? port = null, uint? listen = null, int? listenWaitMs = null)
        {
            Tests(TestGuestImage.Vsock);
            if (port != null) Option(OptVsockPort, port.Value);
            if (listen != null) Option(OptVsockListen, listen.Value);
            if (listenWaitMs != null) Option(OptVsockListenWait, listenWaitMs.Value);
            return this;
        }

        public override string ToString() =>
            string.Join(' ', (_tests.Count > 0 ? [OptTests + string.Join(',', _tests)] : Array.Empty<string>()).Concat(_opts));
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

        /// <summary>Rest of the first line starting with prefix, or null.</summary>
        public string? After(string prefix) =>
            Lines.FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal)) is { } l ? l[prefix.Length..] : null;

        /// <summary>The host MAC from "net arp-reply &lt;mac&gt;".</summary>
        public string? NetArpReplyMac => After(NetArpReplyPrefix);

        /// <summary>n from "PASS net-ping-served n".</summary>
        public int? PingsServed => int.TryParse(After(PassNetPingServedPrefix), out var n) ? n : null;

        /// <summary>Every "mmds &lt;status&gt; &lt;first body line&gt;" line, in order.</summary>
        public IReadOnlyList<(int Status, string FirstLine)> MmdsResponses =>
        [
            .. Lines.Where(l => l.StartsWith(MmdsPrefix, StringComparison.Ordinal))
                .Select(l => l[MmdsPrefix.Length..])
                .Select(r => (parts: r.Split(' ', 2), r))
                .Where(x => x.parts[0].Length == 3 && int.TryParse(x.parts[0], out _))
                .Select(x => (int.Parse(x.parts[0]), x.parts.Length > 1 ? x.parts[1] : ""))
        ];

        /// <summary>Data from "vsock got &lt;data&gt;" (guest-initiated echo).</summary>
        public string? VsockGot => After(VsockGotPrefix);

        /// <summary>Data from "vsock accept got &lt;data&gt;" (host-initiated).</summary>
        public string? VsockAcceptGot => After(VsockAcceptGotPrefix);
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

    /// <summary>tests/testguest/run-qemu-devices.sh (rng, balloon, net + ping + MMDS mock; needs root).</summary>
    public static string RunQemuDevicesScript => System.IO.Path.Combine(SourceDir, "run-qemu-devices.sh");

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
