using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Flint.Bench.Harness;

/// <summary>
/// The whole-process measurements. Every measurement alternates Flint and QEMU runs (A B A B ...), so drift in
/// the host's load hits both the same way.
/// </summary>
internal sealed partial class Measurements
{
    private readonly Settings _s;
    private readonly HarnessResults _r;
    private readonly string _dir;
    private int _seq;

    public sealed record Settings(bool Smoke, string Root, string Flint, string Qemu, string TestGuest, string Kernel, string Rootfs,
        int? CreationBatchOverride = null)
    {
        public int StartupRuns => Smoke ? 3 : 20;
        public int MemoryRuns => Smoke || HostKind.Nested ? 2 : 3;
        public TimeSpan MemoryWindow => TimeSpan.FromSeconds(Smoke ? 0.3 : 1.0);
        public int LatencyRounds => Smoke ? 2 : 3;
        public int LatencyRequests => Smoke ? 50 : 1000;
        public int LatencyWarmup => Smoke ? 5 : 20;
        // Nested L1 (tests/nested-kvm) boots a Linux guest in about 30 s: fewer runs there keep the whole run within L1's limit.
        public int BootRuns => Smoke ? 2 : HostKind.Nested ? 5 : 10;
        public int KernelBootRuns => Smoke ? 2 : HostKind.Nested ? 3 : 5;
        public int CreationRounds => Smoke || HostKind.Nested ? 2 : 3;
        public int BlockRuns => Smoke ? 1 : HostKind.Nested ? 2 : 3;
        public double BlockRunSeconds => Smoke ? 0.2 : 1.0;
        public int ApiRateRounds => Smoke ? 1 : 3;
        public TimeSpan ApiRateWindow => TimeSpan.FromSeconds(Smoke ? 0.3 : 2.0);
        // Below Flint's API connection limit (ApiServer.MaxConnections = 10).
        public int ApiRateConnections => 8;
        public int SnapshotRuns => Smoke ? 1 : 3;
        // At least 16 VMs at once (and two per core on bigger hosts), so the batch saturates the host: with a handful the
        // rate measures one VM's latency, not the host's creation throughput.
        // --creation-batch N sets it (bench/run passes it through).
        public int CreationBatch => CreationBatchOverride ?? (Smoke ? 2 : Math.Max(16, 2 * Environment.ProcessorCount));
    }

    public Measurements(Settings s, HarnessResults r)
    {
        _s = s;
        _r = r;
        _dir = Path.Combine(Path.GetTempPath(), $"flint-bench-{Environment.ProcessId}");
        Directory.CreateDirectory(_dir);
    }

    public static bool HasKvm => File.Exists("/dev/kvm");

    /// <summary>Saves what was measured so far (set by Program): a long step calls it between its parts.</summary>
    public Action? Checkpoint { get; set; }

    /// <summary>
    /// How much longer every bound is inside the nested-KVM L1, where each process start and guest exit is emulated
    /// (QEMU took over 10 s to answer QMP there): the bounds only catch a hang, so they stretch, the figures do not.
    /// </summary>
    internal static readonly int Patience = HostKind.Nested ? 10 : 1;

    private static TimeSpan Wait(int seconds) => TimeSpan.FromSeconds(seconds * Patience);
    public static string NoKvm => "not measurable here: no /dev/kvm";

    private static double Ms(long from, long to) => (to - from) * 1000.0 / Stopwatch.Frequency;

    private Series Add(string section, string metric, string subject, string unit, string? label = null, bool p99 = false)
    {
        var s = new Series { Section = section, Metric = metric, Subject = subject, Unit = unit, Label = label, ShowP99 = p99 };
        _r.Series.Add(s);
        return s;
    }

    private string NewPath(string name) => Path.Combine(_dir, $"{name}-{Interlocked.Increment(ref _seq)}");

    private static void Log(string m) => Console.WriteLine($"harness: {m}");

    // ---------------------------------------------------------------- process start-up helpers

    private static readonly byte[] GetRoot = UdsHttp.Request("GET", "/");
    private static readonly byte[] QmpCaps = Qmp.Command("qmp_capabilities");

    private Child StartFlint(string sock, bool captureStdout, params string[] extra)
    {
        File.Delete(sock);
        var args = new List<string> { "--api-sock", sock, "--id", $"bench{_seq}" };
        args.AddRange(extra);
        return Child.Start(_s.Flint, args, captureStdout);
    }

    /// <summary>Polls (every 100 us) until the API answers GET / with 200; returns the timestamp of the answer.</summary>
    private static (long Ts, UdsHttp Conn) WaitForApi(Child c, string sock)
    {
        var deadline = Stopwatch.GetTimestamp() + 10L * Patience * Stopwatch.Frequency;
        while (true)
        {
            var h = UdsHttp.TryConnect(sock);
            if (h != null)
            {
                try
                {
                    var (st, body) = h.Send(GetRoot);
                    long ts = Stopwatch.GetTimestamp();
                    if (st != 200) throw new InvalidOperationException($"GET / answered {st}: {body}");
                    return (ts, h);
                }
                catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException) { h.Dispose(); }
            }
            if (c.HasExited) throw new InvalidOperationException($"flint exited (status {c.ExitStatus}) before its API answered");
            if (Stopwatch.GetTimestamp() > deadline) throw new TimeoutException($"flint API did not answer in {10 * Patience} s");
            Native.usleep(100);
        }
    }

    private List<string> QemuArgs(string qmpSock, int memMiB, int vcpus, bool minimalMachine)
    {
        // Plain `-M microvm` starts as is (checked with QEMU 7.2); the boot runs use the options the test
        // guest's README uses (no option ROMs, RTC or ACPI: QEMU then puts the virtio-mmio devices on the cmdline).
        return
        [
            "-M", minimalMachine ? "microvm,x-option-roms=off,rtc=off,acpi=off" : "microvm",
            "-S", "-nodefaults", .. QemuAccel.Args, "-m", memMiB.ToString(), "-smp", vcpus.ToString(),
            "-qmp", $"unix:{qmpSock},server=on,wait=off",
        ];
    }

    private Child StartQemu(string qmpSock, int memMiB, int vcpus, bool captureStdout, bool minimalMachine = false, IEnumerable<string>? extra = null)
    {
        File.Delete(qmpSock);
        var args = QemuArgs(qmpSock, memMiB, vcpus, minimalMachine);
        if (extra == null) args.Add("-nographic");
        else args.AddRange(extra);
        return Child.Start(_s.Qemu, args, captureStdout);
    }

    /// <summary>Polls until QMP greets and answers qmp_capabilities; returns the timestamp of that answer.</summary>
    private static (long Ts, Qmp Conn) WaitForQmp(Child c, string sock)
    {
        var deadline = Stopwatch.GetTimestamp() + 10L * Patience * Stopwatch.Frequency;
        while (true)
        {
            var q = Qmp.TryConnect(sock);
            if (q != null)
            {
                try
                {
                    q.Greeting();
                    q.Execute(QmpCaps);
                    return (Stopwatch.GetTimestamp(), q);
                }
                catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException) { q.Dispose(); }
            }
            if (c.HasExited) throw new InvalidOperationException($"qemu exited (status {c.ExitStatus}) before QMP answered");
            if (Stopwatch.GetTimestamp() > deadline) throw new TimeoutException($"QMP did not answer in {10 * Patience} s");
            Native.usleep(100);
        }
    }

    // ---------------------------------------------------------------- 1. start-up

    public void Startup()
    {
        const string sec = "startup";
        var fw = Add(sec, "process start -> API answers (Flint: first `GET /`; QEMU: QMP greeting + `qmp_capabilities`)", "Flint", "ms");
        var qw = Add(sec, "process start -> API answers (Flint: first `GET /`; QEMU: QMP greeting + `qmp_capabilities`)", "QEMU", "ms", QemuAccel.RestLabel("-S"));
        var fc = Add(sec, "CPU time at that moment (all threads, /proc/PID/task/*/schedstat)", "Flint", "ms");
        var qc = Add(sec, "CPU time at that moment (all threads, /proc/PID/task/*/schedstat)", "QEMU", "ms", QemuAccel.RestLabel("-S"));
        var fs = Add(sec, "CPU time at that moment (utime+stime, /proc/PID/stat, 10 ms ticks)", "Flint", "ms");
        var qs = Add(sec, "CPU time at that moment (utime+stime, /proc/PID/stat, 10 ms ticks)", "QEMU", "ms", QemuAccel.RestLabel("-S"));
        var fr = Add(sec, "CPU time of the whole life, killed right after (wait4 rusage)", "Flint", "ms");
        var qr = Add(sec, "CPU time of the whole life, killed right after (wait4 rusage)", "QEMU", "ms", QemuAccel.RestLabel("-S"));
        for (int i = 0; i < _s.StartupRuns; i++)
        {
            // A: flint
            {
                string sock = NewPath("f") + ".sock";
                using var c = StartFlint(sock, false);
                var (ts, conn) = WaitForApi(c, sock);
                fc.Samples.Add(c.CpuMsSchedstat());
                fs.Samples.Add(c.CpuMsStat());
                fw.Samples.Add(Ms(c.SpawnTimestamp, ts));
                conn.Dispose();
                c.Kill();
                fr.Samples.Add(c.Usage.Utime.Ms + c.Usage.Stime.Ms);
                File.Delete(sock);
            }
            // B: QEMU
            {
                string sock = NewPath("q") + ".sock";
                using var c = StartQemu(sock, 128, 1, false);
                var (ts, conn) = WaitForQmp(c, sock);
                qc.Samples.Add(c.CpuMsSchedstat());
                qs.Samples.Add(c.CpuMsStat());
                qw.Samples.Add(Ms(c.SpawnTimestamp, ts));
                conn.Dispose();
                c.Kill();
                qr.Samples.Add(c.Usage.Utime.Ms + c.Usage.Stime.Ms);
                File.Delete(sock);
            }
        }
        Log($"startup: flint median {Stats.Median(fw.Samples):F1} ms wall / {Stats.Median(fc.Samples):F1} ms CPU; " +
            $"qemu median {Stats.Median(qw.Samples):F1} ms wall / {Stats.Median(qc.Samples):F1} ms CPU");
    }

    // ---------------------------------------------------------------- 2. memory

    private (double Rss, double Pss) SampleMemory(Child c)
    {
        long maxRss = 0, maxPss = 0;
        var end = Stopwatch.GetTimestamp() + (long)(_s.MemoryWindow.TotalSeconds * Stopwatch.Frequency);
        do
        {
            var (rss, pss) = c.Memory();
            maxRss = Math.Max(maxRss, rss);
            maxPss = Math.Max(maxPss, pss);
            Thread.Sleep(10);
        } while (Stopwatch.GetTimestamp() < end);
        return (maxRss / 1024.0, maxPss / 1024.0);
    }

    public void Memory()
    {
        const string sec = "memory";
        const string rssM = "RSS, VMM overhead before boot (max of 10 ms samples)";
        const string pssM = "PSS, VMM overhead before boot (max of 10 ms samples)";
        var fRss = Add(sec, rssM + ", API only / -S 128 MiB 1 vCPU", "Flint", "MiB", "nothing configured");
        var qRss = Add(sec, rssM + ", API only / -S 128 MiB 1 vCPU", "QEMU", "MiB", QemuAccel.RestLabel("-S, 128 MiB, 1 vCPU"));
        var fPss = Add(sec, pssM + ", API only / -S 128 MiB 1 vCPU", "Flint", "MiB", "nothing configured");
        var qPss = Add(sec, pssM + ", API only / -S 128 MiB 1 vCPU", "QEMU", "MiB", QemuAccel.RestLabel("-S, 128 MiB, 1 vCPU"));
        var fRss2 = Add(sec, rssM + ", 1024 MiB 2 vCPUs configured (Flint: PUT /machine-config)", "Flint", "MiB", "machine-config PUT, not started");
        var qRss2 = Add(sec, rssM + ", 1024 MiB 2 vCPUs configured (Flint: PUT /machine-config)", "QEMU", "MiB", QemuAccel.RestLabel("-S, 1024 MiB, 2 vCPUs"));
        var fPss2 = Add(sec, pssM + ", 1024 MiB 2 vCPUs configured (Flint: PUT /machine-config)", "Flint", "MiB", "machine-config PUT, not started");
        var qPss2 = Add(sec, pssM + ", 1024 MiB 2 vCPUs configured (Flint: PUT /machine-config)", "QEMU", "MiB", QemuAccel.RestLabel("-S, 1024 MiB, 2 vCPUs"));
        for (int i = 0; i < _s.MemoryRuns; i++)
        {
            foreach (bool big in new[] { false, true })
            {
                {
                    string sock = NewPath("f") + ".sock";
                    using var c = StartFlint(sock, false);
                    var (_, conn) = WaitForApi(c, sock);
                    if (big)
                    {
                        var (st, body) = conn.Send(UdsHttp.Request("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 1024}"));
                        if (st != 204) throw new InvalidOperationException($"PUT /machine-config: {st} {body}");
                    }
                    conn.Dispose();
                    var (rss, pss) = SampleMemory(c);
                    (big ? fRss2 : fRss).Samples.Add(rss);
                    (big ? fPss2 : fPss).Samples.Add(pss);
                }
                {
                    string sock = NewPath("q") + ".sock";
                    using var c = StartQemu(sock, big ? 1024 : 128, big ? 2 : 1, false);
                    var (_, conn) = WaitForQmp(c, sock);
                    conn.Dispose();
                    var (rss, pss) = SampleMemory(c);
                    (big ? qRss2 : qRss).Samples.Add(rss);
                    (big ? qPss2 : qPss).Samples.Add(pss);
                }
            }
        }
        Log($"memory: flint RSS {Stats.Median(fRss.Samples):F1} MiB PSS {Stats.Median(fPss.Samples):F1} MiB; " +
            $"qemu RSS {Stats.Median(qRss.Samples):F1} MiB PSS {Stats.Median(qPss.Samples):F1} MiB");
    }

    // ---------------------------------------------------------------- 3. API latency

    public void Latency()
    {
        const string sec = "latency";
        int n = _s.LatencyRequests;
        var fGet = Add(sec, $"`GET /` x{n} on one keep-alive connection / QMP `query-status` x{n}", "Flint", "us", p99: true);
        var qGet = Add(sec, $"`GET /` x{n} on one keep-alive connection / QMP `query-status` x{n}", "QEMU", "us", QemuAccel.RestLabel("-S"), p99: true);
        var fPut = Add(sec, $"`PUT /machine-config` x{n} on one keep-alive connection", "Flint", "us", p99: true);
        var qPut = Add(sec, $"`PUT /machine-config` x{n} on one keep-alive connection", "QEMU", "us", p99: true);
        qPut.NotMeasured = "no QEMU equivalent (machine size is fixed on its command line)";
        var get = UdsHttp.Request("GET", "/");
        var put = UdsHttp.Request("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256}");
        var qs = Qmp.Command("query-status");
        for (int round = 0; round < _s.LatencyRounds; round++)
        {
            {
                string sock = NewPath("f") + ".sock";
                using var c = StartFlint(sock, false);
                var (_, conn) = WaitForApi(c, sock);
                using (conn)
                {
                    for (int i = 0; i < _s.LatencyWarmup; i++) { conn.Send(get); conn.Send(put); }
                    for (int i = 0; i < n; i++)
                    {
                        long t = Stopwatch.GetTimestamp();
                        var (st, _) = conn.Send(get);
                        fGet.Samples.Add(Ms(t, Stopwatch.GetTimestamp()) * 1000);
                        if (st != 200) throw new InvalidOperationException($"GET / answered {st}");
                    }
                    for (int i = 0; i < n; i++)
                    {
                        long t = Stopwatch.GetTimestamp();
                        var (st, _) = conn.Send(put);
                        fPut.Samples.Add(Ms(t, Stopwatch.GetTimestamp()) * 1000);
                        if (st != 204) throw new InvalidOperationException($"PUT /machine-config answered {st}");
                    }
                }
            }
            {
                string sock = NewPath("q") + ".sock";
                using var c = StartQemu(sock, 128, 1, false);
                var (_, q) = WaitForQmp(c, sock);
                using (q)
                {
                    for (int i = 0; i < _s.LatencyWarmup; i++) q.Execute(qs);
                    for (int i = 0; i < n; i++)
                    {
                        long t = Stopwatch.GetTimestamp();
                        q.Execute(qs);
                        qGet.Samples.Add(Ms(t, Stopwatch.GetTimestamp()) * 1000);
                    }
                }
            }
        }
        Log($"latency: flint GET median {Stats.Median(fGet.Samples):F0} us p99 {Stats.Percentile(fGet.Samples, 99):F0} us, " +
            $"PUT median {Stats.Median(fPut.Samples):F0} us; qemu query-status median {Stats.Median(qGet.Samples):F0} us");
    }

    // ---------------------------------------------------------------- 4. boot and creation rate

    private string TestDisk()
    {
        // The test guest's pattern: byte j of sector s = (s*7 + j) & 0xff.
        string p = NewPath("disk") + ".img";
        var b = new byte[64 * 512];
        for (int s = 0; s < 64; s++) for (int j = 0; j < 512; j++) b[s * 512 + j] = (byte)((s * 7 + j) & 0xff);
        File.WriteAllBytes(p, b);
        return p;
    }

    private string RootfsCopy()
    {
        string p = NewPath("rootfs") + ".ext4";
        File.Copy(_s.Rootfs, p, true);
        return p;
    }

    private static readonly Regex BootTimeRe = new(@"Guest-boot-time =\s*(\d+) us", RegexOptions.Compiled);

    public void Boot()
    {
        const string sec = "boot";
        string? tcg = QemuAccel.GuestRowLabel;
        var fFirst = Add(sec, "test guest: InstanceStart / `cont` -> first guest serial line (~ first guest instructions)", "Flint", "ms");
        var qFirst = Add(sec, "test guest: InstanceStart / `cont` -> first guest serial line (~ first guest instructions)", "QEMU", "ms", tcg);
        var fTimer = Add(sec, "test guest: InstanceStart / `cont` -> boot-timer write (QEMU: the `done` line printed just before it)", "Flint", "ms");
        var qTimer = Add(sec, "test guest: InstanceStart / `cont` -> boot-timer write (QEMU: the `done` line printed just before it)", "QEMU", "ms", tcg);
        var fTimerSelf = Add(sec, "test guest: Flint's own `Guest-boot-time` log (from InstanceStart)", "Flint", "ms");
        var qTimerSelf = Add(sec, "test guest: Flint's own `Guest-boot-time` log (from InstanceStart)", "QEMU", "ms");
        qTimerSelf.NotMeasured = "QEMU has no boot-timer device";
        var fInit = Add(sec, "Linux 6.1 minimal kernel: InstanceStart / `cont` -> `Run /sbin/init` (console=ttyS0)", "Flint", "ms");
        var qInit = Add(sec, "Linux 6.1 minimal kernel: InstanceStart / `cont` -> `Run /sbin/init` (console=ttyS0)", "QEMU", "ms", tcg);
        var qInitOk = Add(sec, "Linux 6.1 minimal kernel: -> busybox /sbin/init prints FLINT_GUEST_INIT_OK", "QEMU", "ms", tcg);
        var fInitOk = Add(sec, "Linux 6.1 minimal kernel: -> busybox /sbin/init prints FLINT_GUEST_INIT_OK", "Flint", "ms");

        bool kvm = HasKvm;
        if (!kvm) foreach (var s in new[] { fFirst, fTimer, fTimerSelf, fInit, fInitOk }) s.NotMeasured = NoKvm;
        if (kvm && IsKvmPvm) fInitOk.NotMeasured = "not measurable on this host: guest user space does not run under kvm_pvm";

        for (int i = 0; i < _s.BootRuns; i++)
        {
            if (kvm) FlintTestGuest(fFirst, fTimer, fTimerSelf);
            QemuTestGuest(qFirst, qTimer);
        }
        for (int i = 0; i < _s.KernelBootRuns; i++)
        {
            if (kvm) FlintKernel(fInit, fInitOk.NotMeasured == null ? fInitOk : null);
            QemuKernel(qInit, qInitOk);
        }
        Log($"boot: qemu ({QemuAccel.Name}) test guest first line {Stats.Median(qFirst.Samples):F1} ms, done {Stats.Median(qTimer.Samples):F1} ms; " +
            $"kernel init {Stats.Median(qInit.Samples):F0} ms" + (kvm ? $"; flint test guest {Stats.Median(fTimer.Samples):F1} ms, kernel {Stats.Median(fInit.Samples):F0} ms" : "; flint: no /dev/kvm"));
    }

    private static bool IsKvmPvm => Directory.Exists("/sys/module/kvm_pvm") && !Directory.Exists("/sys/module/kvm_intel") && !Directory.Exists("/sys/module/kvm_amd");

    private void Put(UdsHttp conn, string path, string body)
    {
        var (st, resp) = conn.Send(UdsHttp.Request("PUT", path, body));
        if (st != 204) throw new InvalidOperationException($"PUT {path}: {st} {resp}");
    }

    private static string J(string s) => System.Text.Json.JsonSerializer.Serialize(s);

    /// <summary>A drive for <see cref="BootFlint"/>: PUT /drives/{Id}.</summary>
    private sealed record BootDrive(string Id, string Path, bool IsRoot);

    /// <summary>
    /// How every Flint measurement boots a guest (the one copy of what four helpers each spelled out): flint with its
    /// API socket and <paramref name="flags"/>, then boot-source, the drive if any, machine-config and InstanceStart.
    /// <c>T0</c> is taken just before InstanceStart, where the boot rows' clock starts (as `cont` is for QEMU).
    /// </summary>
    private (Child C, string Sock, long T0) BootFlint(string kernel, string bootArgs, int memMiB, BootDrive? drive, params string[] flags)
    {
        string sock = NewPath("f") + ".sock";
        var c = StartFlint(sock, true, flags);
        try
        {
            var (_, conn) = WaitForApi(c, sock);
            using (conn)
            {
                Put(conn, "/boot-source", $"{{\"kernel_image_path\": {J(kernel)}, \"boot_args\": {J(bootArgs)}}}");
                if (drive != null)
                    Put(conn, $"/drives/{drive.Id}", $"{{\"drive_id\": {J(drive.Id)}, \"path_on_host\": {J(drive.Path)}, \"is_root_device\": {(drive.IsRoot ? "true" : "false")}, \"is_read_only\": false}}");
                Put(conn, "/machine-config", $"{{\"vcpu_count\": 1, \"mem_size_mib\": {memMiB}}}");
                long t0 = Stopwatch.GetTimestamp();
                Put(conn, "/actions", "{\"action_type\": \"InstanceStart\"}");
                return (c, sock, t0);
            }
        }
        catch
        {
            c.Dispose();
            throw;
        }
    }

    private void FlintTestGuest(Series first, Series timer, Series self)
    {
        string disk = TestDisk();
        var (c, _, t0) = BootFlint(_s.TestGuest, "tg.tests=serial,blk", 128, new BootDrive("disk", disk, false), "--boot-timer");
        using (c)
        {
            var f = c.WaitForLine("FLINT-TESTGUEST start", Wait(30), out _) ?? throw new TimeoutException("flint: no test guest output");
            var b = c.WaitForLine("Guest-boot-time", Wait(30), out var line) ?? throw new TimeoutException("flint: no Guest-boot-time line");
            first.Samples.Add(Ms(t0, f));
            timer.Samples.Add(Ms(t0, b));
            var m = BootTimeRe.Match(line!);
            if (m.Success) self.Samples.Add(long.Parse(m.Groups[1].Value) / 1000.0);
            c.WaitForExit(Wait(30));
        }
        File.Delete(disk);
    }

    private void FlintKernel(Series init, Series? initOk)
    {
        string rootfs = RootfsCopy();
        var (c, _, t0) = BootFlint(_s.Kernel, "console=ttyS0 reboot=k panic=1", 128, new BootDrive("rootfs", rootfs, true), "--boot-timer");
        using (c)
        {
            var r = c.WaitForLine("Run /sbin/init", Wait(120), out _) ?? throw new TimeoutException("flint: kernel never ran /sbin/init");
            init.Samples.Add(Ms(t0, r));
            if (initOk != null && c.WaitForLine("FLINT_GUEST_INIT_OK", Wait(30), out _) is { } ok) initOk.Samples.Add(Ms(t0, ok));
            c.Kill();
        }
        File.Delete(rootfs);
    }

    /// <summary>
    /// QEMU microvm with <paramref name="guest"/> (kernel, cmdline, disk), started paused; resumed over QMP, which is
    /// where the clock starts (t0), as InstanceStart is for Flint.
    /// </summary>
    private (Child C, long T0) StartQemuGuest(string sock, string[] guest)
    {
        var c = StartQemu(sock, 128, 1, true, minimalMachine: true,
            extra: ["-display", "none", "-monitor", "none", "-no-reboot", "-global", "virtio-mmio.force-legacy=false", .. guest, "-serial", "stdio"]);
        var (_, q) = WaitForQmp(c, sock);
        using (q)
        {
            long t0 = Stopwatch.GetTimestamp();
            q.Execute(Qmp.Command("cont"));
            return (c, t0);
        }
    }

    private void QemuTestGuest(Series first, Series done)
    {
        string sock = NewPath("q") + ".sock", disk = TestDisk();
        var (c, t0) = StartQemuGuest(sock, ["-kernel", _s.TestGuest, "-append", "tg.boottimer=0 tg.tests=serial,blk",
            "-drive", $"file={disk},if=none,id=d,format=raw", "-device", "virtio-blk-device,drive=d,serial=flint-tg"]);
        using (c)
        {
            var f = c.WaitForLine("FLINT-TESTGUEST start", Wait(30), out _) ?? throw new TimeoutException("qemu: no test guest output");
            var d = c.WaitForLine("FLINT-TESTGUEST done", Wait(30), out var line) ?? throw new TimeoutException("qemu: no done line");
            if (!line!.Contains("fail=0")) throw new InvalidOperationException($"qemu test guest failed: {line}");
            first.Samples.Add(Ms(t0, f));
            done.Samples.Add(Ms(t0, d));
            c.WaitForExit(Wait(30));
        }
        File.Delete(disk);
    }

    private void QemuKernel(Series init, Series initOk)
    {
        string sock = NewPath("q") + ".sock", rootfs = RootfsCopy();
        // The same cmdline as Flint's runs (Flint adds root= itself).
        var (c, t0) = StartQemuGuest(sock, ["-kernel", _s.Kernel, "-append", "console=ttyS0 reboot=k panic=1" + QemuAccel.LinuxCmdlineExtra + " root=/dev/vda rw",
            "-drive", $"file={rootfs},if=none,id=d,format=raw", "-device", "virtio-blk-device,drive=d"]);
        using (c)
        {
            var r = c.WaitForLine("Run /sbin/init", Wait(120), out _) ?? throw new TimeoutException("qemu: kernel never ran /sbin/init");
            init.Samples.Add(Ms(t0, r));
            if (c.WaitForLine("FLINT_GUEST_INIT_OK", Wait(30), out _) is { } ok) initOk.Samples.Add(Ms(t0, ok));
            c.WaitForExit(Wait(30));
        }
        File.Delete(rootfs);
    }

    public void CreationRate()
    {
        const string sec = "creation";
        int k = _s.CreationBatch;
        string metric = $"microVMs created and run to completion per host core per second ({k} at once, 1 vCPU, 128 MiB, test guest)";
        var f = Add(sec, metric, "Flint", "VMs/core/s");
        var q = Add(sec, metric, "QEMU", "VMs/core/s", QemuAccel.GuestRowLabel);
        if (!HasKvm) f.NotMeasured = NoKvm;
        int cores = Environment.ProcessorCount;
        for (int round = 0; round < _s.CreationRounds; round++)
        {
            if (HasKvm) f.Samples.Add(FlintBatch(k) / cores);
            q.Samples.Add(QemuBatch(k) / cores);
        }
        Log($"creation: qemu ({QemuAccel.Name}) {Stats.Median(q.Samples):F2} VMs/core/s" + (HasKvm ? $", flint {Stats.Median(f.Samples):F2}" : ""));
    }

    private double FlintBatch(int k)
    {
        var disks = new List<string>();
        var configs = new List<string>();
        for (int i = 0; i < k; i++)
        {
            string d = TestDisk(), cfg = NewPath("vm") + ".json";
            File.WriteAllText(cfg, $"{{\"boot-source\": {{\"kernel_image_path\": {J(_s.TestGuest)}, \"boot_args\": \"tg.tests=serial,blk\"}}, " +
                $"\"drives\": [{{\"drive_id\": \"disk\", \"path_on_host\": {J(d)}, \"is_root_device\": false, \"is_read_only\": false}}], " +
                "\"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 128}}");
            disks.Add(d);
            configs.Add(cfg);
        }
        long t0 = Stopwatch.GetTimestamp();
        var cs = configs.Select(cfg => Child.Start(_s.Flint, new[] { "--no-api", "--boot-timer", "--config-file", cfg }, false)).ToList();
        foreach (var c in cs) if (!c.WaitForExit(TimeSpan.FromSeconds(300))) throw new TimeoutException("flint VM did not finish");
        double s = Ms(t0, cs.Max(c => c.ExitTimestamp)) / 1000;
        foreach (var c in cs) c.Dispose();
        foreach (var p in disks.Concat(configs)) File.Delete(p);
        return k / s;
    }

    private double QemuBatch(int k)
    {
        var disks = Enumerable.Range(0, k).Select(_ => TestDisk()).ToList();
        long t0 = Stopwatch.GetTimestamp();
        var cs = disks.Select(d => Child.Start(_s.Qemu, (string[])
        [
            "-M", "microvm,x-option-roms=off,rtc=off,acpi=off", .. QemuAccel.Args, "-m", "128", "-smp", "1",
            "-display", "none", "-monitor", "none", "-nodefaults", "-no-reboot",
            "-kernel", _s.TestGuest, "-append", "tg.boottimer=0 tg.tests=serial,blk",
            "-global", "virtio-mmio.force-legacy=false",
            "-drive", $"file={d},if=none,id=d,format=raw", "-device", "virtio-blk-device,drive=d,serial=flint-tg",
            "-serial", "stdio",
        ], false)).ToList();
        foreach (var c in cs) if (!c.WaitForExit(TimeSpan.FromSeconds(300))) throw new TimeoutException("qemu VM did not finish");
        double s = Ms(t0, cs.Max(c => c.ExitTimestamp)) / 1000;
        foreach (var c in cs) c.Dispose();
        foreach (var p in disks) File.Delete(p);
        return k / s;
    }

    public void Cleanup()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }
}
