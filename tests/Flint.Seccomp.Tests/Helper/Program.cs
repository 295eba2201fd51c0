using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Flint.Seccomp;
using Flint.Sys;

namespace Flint.Seccomp.TestHelper;

/// <summary>
/// Child process for the seccomp tests (filters are never installed in the test host).
///   trap FILTER NR          install the SIGSYS handler, install FILTER ("vmm"/"api"/"vcpu" for a default filter, or a
///                           JSON file whose "vcpu" filter is used) on a new thread, then make raw syscall NR (no args);
///                           prints "survived NR" and exits 0 if the syscall was allowed.
///   work SECONDS FILTERS    runs vcpu-, api- and vmm-style work (vmm on the main thread, like Flint) for SECONDS under GC
///                           pressure; FILTERS is "default" or "none" (for strace). Prints "ROLE kind tid" as each role
///                           thread starts and "done" at the end; exit 0.
///   postboot DIR            as flint's VMM thread after InstanceStart, under the default vmm filter: swaps a drive's
///                           backing file (PATCH /drives), updates and trips its rate limiter (PATCH rate_limiter, the
///                           limiter's timer), serves the queue; prints "postboot ok", removes DIR/api.sock and
///                           exits 0 the way flint does after the guest stops (_exit, still under the filter).
///   postboot-api DIR [old-vmm-filter]
///                           every post-boot API path (drives, network-interfaces, balloon, vm, mmds, metrics, logger,
///                           actions) through the real VmmController and the real devices behind it (a block device
///                           whose backing file is swapped by a path relative to DIR, rate limiters, a balloon, the
///                           i8042), on the main thread under the default vmm filter, as flint's VMM thread serves them
///                           after InstanceStart. Prints "STATUS method path" per call, then "postboot-api ok".
///   vcpu-serial             as flint with --log-path (nothing written to stdout before the filters): opens the
///                           serial console's output the way flint's CLI does, then on a new thread under the default
///                           vcpu filter the guest writes "serial ok\n" to the 16550's data port; exit 0.
///   vcpu-log                as flint with --level Error and no --log-path (no line reaches stdout at start): the
///                           logger is set up on the main thread, then a vCPU thread under the default vcpu filter logs
///                           an error (a device complaining about the guest); exit 0.
///   segv                    installs Flint's fatal-signal handlers, catches three NullReferenceExceptions from null
///                           dereferences in managed code (the runtime's SIGSEGV path, reached through ours), prints
///                           "caught 3", then writes to an unmapped address: exits 150 with the SIGSEGV log line.
/// </summary>
public static unsafe class Program
{
    [DllImport("libc", SetLastError = true)] private static extern long syscall(long nr, long a, long b, long c, long d, long e, long f);

    private static volatile bool s_stop;
    private static int s_errors;

    public static int Main(string[] args)
    {
        try
        {
            return args[0] switch
            {
                "trap" => Trap(args[1], int.Parse(args[2])),
                "vcpu-serial" => VcpuSerial(),
                "vcpu-log" => VcpuLog(),
                "segv" => Segv(),
                "postboot" => PostBoot(args[1]),
                "postboot-api" => PostBootApi(args[1], args.Length > 2 && args[2] == "old-vmm-filter"),
                "work" => Work(double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture), args[2] == "default"),
                _ => Usage(),
            };
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"helper failed: {e}");
            return 1;
        }
    }

    private sealed class Box { public int X = 0; } // never set on purpose: ReadX(null) is the helper's null dereference

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static int ReadX(Box? b) => b!.X;

    private static int Segv()
    {
        FatalSignals.Install(FatalSignals.SIGSEGV);
        FatalSignals.Install(FatalSignals.SIGBUS);
        int caught = 0;
        for (int i = 0; i < 3; i++)
        {
            try { ReadX(null); }
            catch (NullReferenceException) { caught++; }
        }
        Console.WriteLine($"caught {caught}");
        Console.Out.Flush();
        // 1 MiB: above the 64 KiB null area the runtime owns, below anything the loader or mmap places (PIE images
        // and mmap_base sit far higher), so certainly unmapped (SEGV_MAPERR). A fixed address up in the mmap area was
        // not: the runtime's PROT_NONE reservations sometimes covered it and the fault came as SEGV_ACCERR (code 2).
        *(int*)0x10_0000 = 1;
        Console.WriteLine("survived the wild write");
        return 0;
    }

    private static int PostBoot(string dir)
    {
        SigsysHandler.Install();
        string a = Path.Combine(dir, "a.img"), b = Path.Combine(dir, "b.img");
        File.WriteAllBytes(a, new byte[4096]);
        File.WriteAllBytes(b, new byte[8192]);
        File.WriteAllText(Path.Combine(dir, "api.sock"), ""); // stands in for the API socket file
        var mem = Flint.Memory.GuestMemory.Create([(0UL, 0x100000UL)]);
        var limiter = new Flint.Devices.RateLimiting.RateLimiter(new Flint.Devices.RateLimiting.TokenBucketConfig(1 << 20, null, 100), null);
        var blk = new Flint.Devices.Virtio.Block.VirtioBlock(a, rateLimiter: limiter);
        var q = new Flint.Devices.Virtio.VirtQueue(256) { Size = 16, DescTable = 0x1000, AvailRing = 0x2000, UsedRing = 0x3000, Ready = true };
        using var irq = new EventFd();
        if (!blk.Activate(mem, [q], new Flint.Devices.Virtio.VirtioInterrupt(new Flint.Devices.EventFdInterrupt(irq)), blk.AvailableFeatures))
            throw new InvalidOperationException("activate");
        Console.WriteLine("postboot start"); // flint's console is in use long before its filters (log lines, serial)
        SeccompFilter.InstallOnCurrentThread(Filter(ThreadKind.Vmm));
        blk.UpdateBackingFile(b);                                   // PATCH /drives/{id} path_on_host
        limiter.Update(new Flint.Devices.RateLimiting.TokenBucketConfig(10, null, 1000), null); // PATCH rate_limiter
        while (limiter.ConsumeRequest(8)) { }                      // trip it: arms the timerfd
        blk.ProcessQueue(0);                                        // an empty queue notification
        GC.Collect();
        Console.WriteLine("postboot ok");
        // flint's way out after the guest stops (FlintProcess.ExitUnderFilter): remove the API socket file, flush, _exit;
        // every step must pass the vmm filter. (flint cannot return from Main here: unregistering its signal handlers in
        // the runtime's shutdown calls rt_sigaction, which the filter refuses.)
        File.Delete(Path.Combine(dir, "api.sock"));
        Console.Out.Flush();
        Libc.ExitNow(0);
        return 0;
    }

    /// <summary>The API's view of the running VM over real devices: RunningVm's method bodies, without a KVM VM.</summary>
    private sealed class DeviceVm(Flint.Devices.Virtio.Block.VirtioBlock blk, Flint.Devices.RateLimiting.RateLimiter rx,
        Flint.Devices.RateLimiting.RateLimiter tx, Flint.Devices.Virtio.Balloon.VirtioBalloon balloon,
        Flint.Devices.Legacy.I8042 i8042, int vcpuTid) : Flint.Vmm.Rpc.IRunningVm
    {
        public bool IsPaused { get; private set; }
        public void Pause() { Signals.Kick(vcpuTid); IsPaused = true; }   // the vCPU kick, as Vmm.Pause
        public void Resume() { Signals.Kick(vcpuTid); IsPaused = false; }
        public void SendCtrlAltDel() { if (!i8042.SendCtrlAltDel()) throw new InvalidOperationException("i8042 full"); }
        public void PatchDrive(string driveId, string pathOnHost) => blk.UpdateBackingFile(pathOnHost);
        public void PatchDriveRateLimiter(string driveId, JsonElement rateLimiter) =>
            blk.RateLimiter!.Update(Flint.Vmm.Config.DeviceConfigs.Limiter(rateLimiter, "rate_limiter"));
        public void PatchNetwork(string ifaceId, JsonElement? r, JsonElement? t)
        {
            if (r is { } re) rx.Update(Flint.Vmm.Config.DeviceConfigs.Limiter(re, "rx_rate_limiter"));
            if (t is { } te) tx.Update(Flint.Vmm.Config.DeviceConfigs.Limiter(te, "tx_rate_limiter"));
        }
        public string GetBalloonJson() => balloon.GetConfig().ToJson();
        public string GetBalloonStatsJson() => balloon.GetStats().ToJson();
        public void PatchBalloon(uint amountMib) => balloon.UpdateTarget(amountMib);
        public void PatchBalloonStatsInterval(uint intervalS) => balloon.UpdateStatsInterval(intervalS);
    }

    private static int PostBootApi(string dir, bool oldFilter)
    {
        SigsysHandler.Install();
        Signals.InstallKickHandler();
        // A jail's paths are relative: the VMM runs in the chroot's root.
        Directory.SetCurrentDirectory(dir);
        File.WriteAllBytes("a.img", new byte[4096]);
        File.WriteAllBytes("b.img", new byte[8192]);
        File.WriteAllBytes("vmlinux", new byte[64]);
        var mem = Flint.Memory.GuestMemory.Create([(0UL, 0x100000UL)]);
        var limiter = new Flint.Devices.RateLimiting.RateLimiter(new Flint.Devices.RateLimiting.TokenBucketConfig(1 << 20, null, 100), null);
        var blk = new Flint.Devices.Virtio.Block.VirtioBlock("a.img", rateLimiter: limiter);
        var q = new Flint.Devices.Virtio.VirtQueue(256) { Size = 16, DescTable = 0x1000, AvailRing = 0x2000, UsedRing = 0x3000, Ready = true };
        using var irq = new EventFd();
        var interrupt = new Flint.Devices.EventFdInterrupt(irq);
        if (!blk.Activate(mem, [q], new Flint.Devices.Virtio.VirtioInterrupt(interrupt), blk.AvailableFeatures))
            throw new InvalidOperationException("activate");
        var balloon = new Flint.Devices.Virtio.Balloon.VirtioBalloon(0, false, 1);
        var i8042 = new Flint.Devices.Legacy.I8042(interrupt, () => { });
        var rx = new Flint.Devices.RateLimiting.RateLimiter((Flint.Devices.RateLimiting.TokenBucketConfig?)null, null);
        var tx = new Flint.Devices.RateLimiting.RateLimiter((Flint.Devices.RateLimiting.TokenBucketConfig?)null, null);
        int vcpuTid = 0;
        using var vcpuReady = new ManualResetEventSlim();
        var vcpu = new Thread(() => { vcpuTid = Libc.gettid(); vcpuReady.Set(); while (true) Thread.Sleep(1000); }) { IsBackground = true };
        vcpu.Start();
        vcpuReady.Wait();
        var metrics = new FileStream("metrics.json", FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
        var mmds = new Flint.Devices.Mmds.MmdsStore();
        var vm = new DeviceVm(blk, rx, tx, balloon, i8042, vcpuTid);
        var controller = new Flint.Vmm.Rpc.VmmController(_ => vm, "helper", "0.1.0")
        {
            MmdsStore = mmds,
            ConfigureMetrics = _ => { },
            FlushMetricsHandler = () => { metrics.Write("{\"flush\":1}\n"u8); metrics.Flush(); },
        };
        int failures = 0;
        void Call(string method, string path, string? body, int expect)
        {
            var r = controller.Handle(method, path, body);
            Console.WriteLine($"{r.Status} {method} {path} {r.Body}");
            if (r.Status != expect) { failures++; Console.WriteLine($"  expected {expect}"); }
        }
        // Before boot (unfiltered, as in flint): what the post-boot calls need to exist.
        Call("PUT", "/boot-source", "{\"kernel_image_path\": \"vmlinux\"}", 204);
        Call("PUT", "/drives/data", "{\"drive_id\": \"data\", \"path_on_host\": \"a.img\", \"is_root_device\": false}", 204);
        Call("PUT", "/network-interfaces/eth0", "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"}", 204);
        Call("PUT", "/balloon", "{\"amount_mib\": 0, \"deflate_on_oom\": false, \"stats_polling_interval_s\": 1}", 204);
        Call("PUT", "/mmds/config", "{\"network_interfaces\": [\"eth0\"], \"version\": \"V2\"}", 204);
        Call("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 204);
        Console.Out.Flush();

        var vmm = Filter(ThreadKind.Vmm);
        if (oldFilter)
        {
            // The vmm filter before getcwd was allowed: the relative PATCH /drives below must end in 148.
            var spec = DefaultFilters.GetSpec(ThreadKind.Vmm);
            vmm = WithCoreClrExtras(spec with { Rules = spec.Rules.Where(r => r.Syscall != "getcwd").ToList() }, "vmm");
        }
        SeccompFilter.InstallOnCurrentThread(vmm);
        Call("PATCH", "/drives/data", "{\"drive_id\": \"data\", \"path_on_host\": \"b.img\"}", 204);
        Call("PATCH", "/drives/data", "{\"drive_id\": \"data\", \"rate_limiter\": {\"bandwidth\": {\"size\": 1000, \"refill_time\": 100}}}", 204);
        Call("PATCH", "/network-interfaces/eth0", "{\"iface_id\": \"eth0\", \"rx_rate_limiter\": {\"ops\": {\"size\": 10, \"refill_time\": 100}}, \"tx_rate_limiter\": {\"bandwidth\": {\"size\": 1000, \"refill_time\": 100}}}", 204);
        Call("GET", "/balloon", null, 200);
        // Firecracker: PATCH /balloon before the guest driver activated the device is refused (no guest here); the
        // request still runs through the controller and the device under the filter.
        Call("PATCH", "/balloon", "{\"amount_mib\": 4}", 400);
        Call("PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\": 2}", 204);
        Call("GET", "/balloon/statistics", null, 200);
        Call("PATCH", "/vm", "{\"state\": \"Paused\"}", 204);
        Call("PATCH", "/vm", "{\"state\": \"Resumed\"}", 204);
        Call("PUT", "/mmds", "{\"latest\": {\"meta-data\": {\"ami-id\": \"ami-1\"}}}", 204);
        Call("PATCH", "/mmds", "{\"latest\": {\"meta-data\": {\"ami-id\": \"ami-2\"}}}", 204);
        Call("GET", "/mmds", null, 200);
        Call("PUT", "/metrics", "{\"metrics_path\": \"metrics2.json\"}", 400);   // pre-boot only, as in Firecracker
        Call("PUT", "/logger", "{\"log_path\": \"log2\", \"level\": \"Info\"}", 400); // pre-boot only
        Call("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}", 204);
        Call("PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}", 204);
        Call("GET", "/vm/config", null, 200);
        Call("GET", "/", null, 200);
        Call("PUT", "/drives/other", "{\"drive_id\": \"other\", \"path_on_host\": \"a.img\", \"is_root_device\": false}", 400);
        GC.Collect();
        Console.WriteLine(failures == 0 ? "postboot-api ok" : $"postboot-api: {failures} unexpected answers");
        Console.Out.Flush();
        Libc.ExitNow(failures == 0 ? 0 : 1);
        return 0;
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: trap FILTER NR | work SECONDS default|none");
        return 2;
    }

    private static ReadOnlySpan<SockFilter> Resolve(string filter) => filter switch
    {
        "vmm" => Filter(ThreadKind.Vmm),
        "api" => Filter(ThreadKind.Api),
        "vcpu" => Filter(ThreadKind.Vcpu),
        _ => WithCoreClrExtras(FilterParser.Parse(File.ReadAllText(filter))["vcpu"], "vcpu"),
    };

    /// <summary>
    /// What CoreCLR needs on top of flint's filters: this helper runs JIT-compiled (flint is NativeAOT), and the JIT
    /// maps code (PROT_EXEC, which flint's filters refuse after start-up) and reads assemblies on a thread's first use
    /// of them. The real binary runs under the filters exactly as shipped in tests/Flint.Vmm.Tests/SeccompProcessTests.
    /// </summary>
    private static readonly string[] CoreClrExtras = ["mmap", "mprotect", "pread64", "readlink", "stat", "fcntl"];

    private static SockFilter[] Filter(ThreadKind kind) => WithCoreClrExtras(DefaultFilters.GetSpec(kind), kind.JsonName());

    private static SockFilter[] WithCoreClrExtras(SeccompFilterSpec spec, string name)
    {
        var extra = CoreClrExtras.Select(n => new SeccompRule(n, SyscallTable.TryGetNumber(n, out int nr) ? nr : throw new ArgumentException(n), [], "CoreCLR"));
        return BpfCompiler.Compile(spec with { Rules = [.. spec.Rules, .. extra] }, name);
    }

    private static int Trap(string filter, int nr)
    {
        var prog = Resolve(filter).ToArray();
        SigsysHandler.Install();
        var t = new Thread(() =>
        {
            SeccompFilter.InstallOnCurrentThread(prog);
            long r = syscall(nr, 0, 0, 0, 0, 0, 0);
            var msg = Encoding.ASCII.GetBytes($"survived {nr} -> {r}\n");
            fixed (byte* p = msg) Libc.write(1, p, (nuint)msg.Length);
        }, 256 * 1024);
        t.Start();
        t.Join();
        return 0;
    }

    private sealed class NoIrq : Flint.Devices.IInterrupt { public void Trigger() { } }

    private static int VcpuSerial()
    {
        var prog = Filter(ThreadKind.Vcpu);
        SigsysHandler.Install();
        // Opened on the main thread, before any filter, as Cli does; nothing else touches the console first: with
        // --log-path set, flint writes no log line to stdout, so the guest's first console byte is the first write.
        var serial = new Flint.Devices.Legacy.Serial(Flint.Vmm.Builder.ConsoleOutput.OpenStdout(), new NoIrq());
        var t = new Thread(() =>
        {
            SeccompFilter.InstallOnCurrentThread(prog);
            foreach (byte b in "serial ok\n"u8) serial.Write(0, [b]); // the vCPU thread's port 0x3f8 OUT exits
        }, 256 * 1024);
        t.Start();
        t.Join();
        return 0;
    }

    private static int VcpuLog()
    {
        var prog = Filter(ThreadKind.Vcpu);
        SigsysHandler.Install();
        Flint.Vmm.Logging.Logger.Level = Flint.Vmm.Logging.LogLevel.Error; // --level Error: the start-up lines are not written
        Flint.Vmm.Logging.Logger.Info("not written");
        var t = new Thread(() =>
        {
            SeccompFilter.InstallOnCurrentThread(prog);
            Flint.Vmm.Logging.Logger.Error("vcpu log ok");
        }, 256 * 1024);
        t.Start();
        t.Join();
        return 0;
    }

    // ---------------------------------------------------------------- work

    private static readonly ConcurrentQueue<(string Body, ManualResetEventSlim Done)> s_apiQueue = new();
    private static EventFd s_apiEvt = null!, s_vcpuEvt = null!;
    private static readonly object s_logLock = new();
    private static StreamWriter s_log = null!;
    private static string s_dir = null!;
    private static Socket? s_listener;

    private static void Log(string msg)
    {
        lock (s_logLock) { s_log.WriteLine($"{DateTime.UtcNow:O} [{Thread.CurrentThread.Name}] {msg}"); s_log.Flush(); }
    }

    private static void Role(string kind)
    {
        lock (s_logLock) Console.Out.WriteLine($"ROLE {kind} {Libc.gettid()}");
        Console.Out.Flush();
    }

    private static readonly SockFilter[] AllowAll = BpfCompiler.Compile(
        new SeccompFilterSpec(SeccompAction.Allow, SeccompAction.Allow, []), "allow-all");

    /// <summary>The kind's default filter, or (unfiltered runs) an allow-all one, so strace shows where the filter goes on.</summary>
    private static SockFilter[] FilterFor(ThreadKind kind, bool filters) => filters ? Filter(kind) : AllowAll;

    private static int Work(double seconds, bool filters)
    {
        s_dir = Path.Combine(Path.GetTempPath(), $"flint-seccomp-{Environment.ProcessId}");
        Directory.CreateDirectory(s_dir);
        s_log = new StreamWriter(new FileStream(Path.Combine(s_dir, "log"), FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        s_apiEvt = new EventFd();
        s_vcpuEvt = new EventFd();
        string sock = Path.Combine(s_dir, "api.sock");
        if (filters) SigsysHandler.Install();
        Signals.InstallKickHandler();
        Log("starting");
        Role("main-setup");

        var vcpuReady = new ManualResetEventSlim();
        var apiReady = new ManualResetEventSlim();
        int vcpuTid = 0;
        var vcpuPartner = new ManualResetEventSlim();
        var monitor = new object();

        var vcpu = new Thread(() =>
        {
            vcpuTid = Libc.gettid();
            Role("vcpu");
            SeccompFilter.InstallOnCurrentThread(FilterFor(ThreadKind.Vcpu, filters));
            vcpuReady.Set();
            VcpuWork(vcpuPartner, monitor);
        }, 256 * 1024)
        { Name = "fc_vcpu 0", IsBackground = true };

        var api = new Thread(() =>
        {
            Role("api");
            var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(sock));
            listener.Listen(64);
            listener.Blocking = false;
            var epoll = new Epoll(); // as ApiServer.Start: set up before the thread takes its filter
            epoll.Add((int)listener.Handle, 1);
            SeccompFilter.InstallOnCurrentThread(FilterFor(ThreadKind.Api, filters));
            apiReady.Set();
            ApiWork(listener, epoll);
        })
        { Name = "fc_api", IsBackground = true };

        vcpu.Start();
        api.Start();
        vcpuReady.Wait();
        apiReady.Wait();

        // Unfiltered helpers, started before the main thread takes the vmm filter (as Flint must).
        var helpers = new List<Thread>
        {
            new(() => { Role("gc-pressure"); Allocate(); }) { Name = "gc", IsBackground = true },
            new(() => { Role("api-client"); ApiClient(sock); }) { Name = "client", IsBackground = true },
            new(() =>
            {
                Role("kicker");
                while (!s_stop)
                {
                    Signals.Kick(vcpuTid);
                    vcpuPartner.Set();
                    lock (monitor) Monitor.PulseAll(monitor);
                    Thread.Sleep(2);
                }
            }) { Name = "kicker", IsBackground = true },
        };
        foreach (var t in helpers) t.Start();

        Role("vmm");
        SeccompFilter.InstallOnCurrentThread(FilterFor(ThreadKind.Vmm, filters));
        VmmWork(seconds);

        s_stop = true;
        s_vcpuEvt.Write();
        bool joined = vcpu.Join(5000) & api.Join(5000);
        s_listener?.Dispose();
        foreach (var t in helpers) joined &= t.Join(5000);
        Log("stopping");
        Console.Out.WriteLine(joined && s_errors == 0 ? "done" : $"not clean: joined={joined} errors={s_errors}");
        Console.Out.Flush();
        return joined && s_errors == 0 ? 0 : 1;
    }

    private static void Fail(string where, Exception e)
    {
        Interlocked.Increment(ref s_errors);
        Console.Error.WriteLine($"{where}: {e}");
    }

    private static void VcpuWork(ManualResetEventSlim partner, object monitor)
    {
        try
        {
            var rng = new Random(1);
            var keep = new List<byte[]>();
            long n = 0;
            while (!s_stop)
            {
                // Device-emulation-like work: allocations (some large, forcing GCs), waits, eventfd doorbells, logging.
                for (int i = 0; i < 200; i++)
                {
                    var a = new byte[rng.Next(16, 64 * 1024)];
                    if (i % 7 == 0) keep.Add(a);
                }
                if (keep.Count > 500) keep.RemoveRange(0, 250);
                if (n % 50 == 0) keep.Add(new byte[200 * 1024]); // LOH
                s_vcpuEvt.Write();
                partner.Wait(5);
                partner.Reset();
                lock (monitor) Monitor.Wait(monitor, 1);
                if (n % 10 == 0) Thread.Sleep(1);
                if (n % 3 == 0) Thread.Yield();
                if (n % 100 == 0) Log($"vcpu iteration {n}");
                try { if (n % 20 == 0) throw new InvalidOperationException("exercise EH"); }
                catch (InvalidOperationException) { }
                if (n % 200 == 0) GC.Collect(2, GCCollectionMode.Forced, blocking: true);
                n++;
            }
        }
        catch (Exception e) { Fail("vcpu", e); }
    }

    private static void ApiWork(Socket listener, Epoll epoll)
    {
        try
        {
            var events = new EpollEvent[8];
            var conns = new Dictionary<ulong, Socket>();
            ulong next = 2;
            var buf = new byte[4096];
            while (!s_stop)
            {
                int n = epoll.Wait(events, 20);
                for (int i = 0; i < n; i++)
                {
                    ulong tok = events[i].Data;
                    if (tok == 1)
                    {
                        while (true)
                        {
                            Socket s;
                            try { s = listener.Accept(); }
                            catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock) { break; }
                            s.Blocking = false;
                            conns[next] = s;
                            epoll.Add((int)s.Handle, next++);
                        }
                        continue;
                    }
                    var c = conns[tok];
                    int r = c.Receive(buf, SocketFlags.None, out var err);
                    if (err == SocketError.WouldBlock) continue;
                    if (r <= 0 || err != SocketError.Success)
                    {
                        epoll.Remove((int)c.Handle);
                        c.Dispose();
                        conns.Remove(tok);
                        continue;
                    }
                    string body = Encoding.UTF8.GetString(buf, 0, r);
                    using (var doc = JsonDocument.Parse(body)) { _ = doc.RootElement.GetProperty("action").GetString(); }
                    var done = new ManualResetEventSlim();
                    s_apiQueue.Enqueue((body, done));
                    s_apiEvt.Write();
                    while (!done.Wait(50)) if (s_stop) return;
                    var resp = Encoding.UTF8.GetBytes($"HTTP/1.1 204 No Content\r\nServer: Firecracker API\r\n\r\n{{\"n\":{tok}}}");
                    c.Send(resp, SocketFlags.None, out _);
                }
            }
            foreach (var c in conns.Values) c.Dispose();
            // Not the listener: disposing a bound Unix socket unlinks its path, which the api filter refuses. As in
            // flint, the main thread disposes it (ApiServer.Dispose).
            s_listener = listener;
            epoll.Dispose();
        }
        catch (Exception e) { Fail("api", e); }
    }

    private static void VmmWork(double seconds)
    {
        try
        {
            string img = Path.Combine(s_dir, "disk.img");
            int fd;
            fixed (byte* p = Encoding.UTF8.GetBytes(img + "\0")) fd = Libc.open(p, Libc.O_RDWR | Libc.O_CREAT | Libc.O_CLOEXEC, 0x180);
            if (fd < 0) throw SysException.Last("open");
            using var timer = new TimerFd();
            timer.Arm(TimeSpan.FromMilliseconds(5), TimeSpan.FromMilliseconds(5));
            using var epoll = new Epoll();
            epoll.Add(s_apiEvt.Fd, 1);
            epoll.Add(s_vcpuEvt.Fd, 2);
            epoll.Add(timer.Fd, 3);
            var events = new EpollEvent[8];
            var sector = new byte[4096];
            var metrics = new FileStream(Path.Combine(s_dir, "metrics"), FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
            var deadline = DateTime.UtcNow.AddSeconds(seconds);
            long ticks = 0;
            while (DateTime.UtcNow < deadline)
            {
                int n = epoll.Wait(events, 50);
                for (int i = 0; i < n; i++)
                {
                    switch (events[i].Data)
                    {
                        case 1:
                            s_apiEvt.Read();
                            while (s_apiQueue.TryDequeue(out var req))
                            {
                                Log($"api request {req.Body.Length} bytes");
                                req.Done.Set();
                            }
                            break;
                        case 2:
                            s_vcpuEvt.Read();
                            // virtio-blk-like request: read-modify-write a sector, flush.
                            fixed (byte* b = sector)
                            {
                                long off = (ticks % 64) * 4096;
                                Libc.pread(fd, b, 4096, off);
                                b[0]++;
                                Libc.pwrite(fd, b, 4096, off);
                                if (ticks % 8 == 0) Libc.fdatasync(fd);
                            }
                            _ = new string('x', 100) + ticks; // garbage
                            break;
                        case 3:
                            timer.Read();
                            if (++ticks % 20 == 0)
                            {
                                var line = Encoding.UTF8.GetBytes($"{{\"utc_timestamp_ms\":{DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()},\"ticks\":{ticks}}}\n");
                                metrics.Write(line);
                                metrics.Flush();
                                Console.Out.WriteLine($"tick {ticks}");
                                Console.Out.Flush();
                            }
                            break;
                    }
                }
            }
            metrics.Dispose();
            Libc.close(fd);
        }
        catch (Exception e) { Fail("vmm", e); }
    }

    private static void Allocate()
    {
        var keep = new List<object>();
        var rng = new Random(2);
        while (!s_stop)
        {
            for (int i = 0; i < 1000; i++)
            {
                object o = rng.Next(4) switch { 0 => new byte[rng.Next(1, 100_000)], 1 => new string('a', rng.Next(1, 1000)), 2 => new int[rng.Next(1, 10000)], _ => new List<int>(100) };
                if (i % 10 == 0) keep.Add(o);
            }
            if (keep.Count > 2000) keep.RemoveRange(0, 1000);
            Thread.Sleep(0);
        }
    }

    private static void ApiClient(string sock)
    {
        try
        {
            int i = 0;
            while (!s_stop)
            {
                using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                s.Connect(new UnixDomainSocketEndPoint(sock));
                for (int k = 0; k < 5 && !s_stop; k++)
                {
                    s.Send(Encoding.UTF8.GetBytes($"{{\"action\":\"FlushMetrics\",\"i\":{i++}}}"));
                    var buf = new byte[1024];
                    s.ReceiveTimeout = 2000;
                    try { if (s.Receive(buf) <= 0) break; } catch (SocketException) when (s_stop) { break; }
                }
                Thread.Sleep(1);
            }
        }
        catch (Exception e) when (!s_stop) { Fail("client", e); }
        catch (Exception) { }
    }
}
