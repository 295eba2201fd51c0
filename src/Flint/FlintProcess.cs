using Flint.Vmm.Snapshot;
using System.Diagnostics;
using Flint.Api;
using Flint.Arch.X86;
using Flint.Seccomp;
using Flint.Sys;
using Flint.Vmm;
using Flint.Vmm.Builder;
using Flint.Vmm.Config;
using Flint.Vmm.Logging;
using Flint.Vmm.Metrics;
using Flint.Vmm.Rpc;

namespace Flint;

/// <summary>
/// One flint process: optional API server, optional VM from a config file, metrics, and the VMM thread's loop.
/// Before InstanceStart the main thread polls only the API queue; afterwards the VM's event loop polls it too.
/// </summary>
internal sealed class FlintProcess
{
    public sealed record Settings(string Id, string? ApiSock, int MaxPayload, VmConfig? Config, VmOptions Options,
        string? MetricsPath, long StartTimestamp, SeccompConfig Seccomp,
        long? JailerStartTimeUs = null, long? JailerStartCpuUs = null, long? ParentCpuTimeUs = null);

    /// <summary>The MMDS data store: the API writes it, the VM's network stacks serve it.</summary>
    private Flint.Devices.Mmds.MmdsStore Mmds => _s.Options.MmdsStore;

    /// <summary>
    /// Before the VM exists, how long the VMM thread keeps watching the API queue after answering: long enough to see
    /// a client's next configuration request (one socket round trip after the answer) without sleeping in epoll.
    /// </summary>
    private static readonly TimeSpan PrebootLinger = TimeSpan.FromMicroseconds(60);

    private readonly Settings _s;
    private readonly MetricsRegistry _metrics;
    private readonly MetricsOutput _metricsOut;
    private readonly ApiRequestMetrics _apiRequests = new();
    private readonly VmLatencyMetrics _latencies = new();
    /// <summary>Taps and the vsock socket the API opens at PUT time (as Firecracker); the builder takes them at InstanceStart.</summary>
    private readonly Flint.Vmm.Builder.PreopenedHostDevices _preopened = new();
    private Vmm.Vmm? _vmm;
    private long _startTimestamp;

    public FlintProcess(Settings s)
    {
        _s = s;
        _startTimestamp = s.StartTimestamp;
        _metrics = new MetricsRegistry();
        _metricsOut = new MetricsOutput(_metrics);
    }

    public int Run()
    {
        if (_s.Seccomp.IsEnabled)
        {
            SigsysHandler.Install();
        }
        _metrics.Bind("seccomp", "num_faults", () => SeccompMetrics.NumFaults);
        _apiRequests.BindTo(_metrics);
        _latencies.BindTo(_metrics);
        // Before any seccomp filter: the native handlers are written into memory made executable here.
        var signals = new SignalHandlers(_metrics, _metricsOut.FlushQuietly);
        // The runtime probes for IPv6 (an AF_INET6 socket) on its first socket; the baseline refuses every socket but a
        // Unix one, so the probe runs now, before it.
        _ = System.Net.Sockets.Socket.OSSupportsIPv6;
        // The process baseline on every thread that exists (the runtime's finalizer and socket threads too) and, by
        // inheritance, every thread created later; the API, vCPU and VMM role filters stack on it. Its own threads
        // take their role filter themselves, but the runtime's never run our code, so only a filter put on them from
        // outside (TSYNC, which works only before any thread has a filter of its own) can hold them.
        try { SeccompFilter.InstallOnAllThreads(_s.Seccomp); }
        catch (Exception e) when (e is SysException or InvalidOperationException)
        {
            Logger.Error($"Failed to install the seccomp filters: {e.Message}");
            return ExitCodes.GenericError;
        }
        if (_s.MetricsPath != null && !TryConfigureMetrics(_s.MetricsPath, out var err))
        {
            Logger.Error(err);
            return ExitCodes.GenericError;
        }
        // The config file's logger and metrics come first, as in Firecracker's VmResources::from_json: the rest of
        // the start-up then logs and counts where the file says.
        if (_s.Config != null && ApplyConfigFileOutputs(_s.Config) is { } outputsError)
        {
            Logger.Error($"Configuration for VMM from one single json failed: {outputsError}");
            return ExitCodes.BadConfiguration;
        }

        VmmController? controller = null;
        QueuedApiHandler? queued = null;
        ApiServer? server = null;
        try
        {
            if (_s.ApiSock != null)
            {
                controller = new VmmController(StartVm, _s.Id, Cli.Version)
                {
                    MmdsStore = Mmds,
                    Preopened = _preopened,
                    CreateSnapshotHandler = p => SnapshotCreator.Create(_vmm!, controller!.Configuration, Mmds, p),
                    LoadSnapshotHandler = LoadSnapshot,
                    // Firecracker ends the process when a load failed half-way (its fatal_error), after the answer.
                    OnFatalLoadError = () => _fatalLoad = true,
                    ConfigureMetrics = m => _metricsOut.Configure(m.MetricsPath, m.EmitId == true ? _s.Id : null, m.Properties),
                    FlushMetricsHandler = () =>
                    {
                        // Firecracker's METRICS.write(): nothing configured, nothing written, and no error.
                        if (_metricsOut.Writer == null) return;
                        _metricsOut.FlushOrThrow(); // a line not written (full disk, FIFO full) is an error, not a 204
                    },
                };
                controller.SnapshotMetrics.Bind(_metrics);
                queued = new QueuedApiHandler(controller);
                VmmMetricsBinding.BindConfigured(_metrics, () => controller?.Configuration);
                // The reads the controller publishes are answered on the API thread; the rest goes to the VMM thread.
                server = new ApiServer(_s.ApiSock, _s.MaxPayload, _latencies.TimeApiRequests(new PublishedReadsHandler(controller.Published, queued)))
                {
                    BeforeServe = () => SeccompFilter.InstallOnCurrentThread(_s.Seccomp, ThreadKind.Api),
                    ExtraWatch = (signals.FatalEventFd, signals.OnFatalSignal),
                    RequestMetrics = _apiRequests,
                };
                try { server.Start(); }
                catch (ApiSocketException e)
                {
                    // Firecracker's exit code for an API server that cannot bind; the message names the path and why.
                    // It goes to stderr too: with --log-path set, the log alone would hide it from whoever ran flint.
                    Logger.Error(e.Message);
                    Console.Error.WriteLine($"Error: {e.Message}");
                    return ExitCodes.GenericError;
                }
                RecordStartupTime();
            }

            if (_s.Config != null)
            {
                int rc = BuildFromConfigFile(_s.Config, controller);
                if (rc != ExitCodes.Ok) return rc;
            }

            // Pre-boot: serve the API until InstanceStart builds the VM.
            if (_vmm == null && queued != null)
            {
                // Start-up is over: the binary's pages it read once (type data, start-up code) leave this process's
                // resident set, all but those the runtime wrote; what serving the API runs faults back in
                // (docs/benchmarks/memory-and-api.md).
                ExecutableImage.ReleaseUnwrittenPages();
                using var preboot = new EventLoop();
                preboot.Add(queued.Fd, _ => queued.ProcessPendingAndLinger(PrebootLinger));
                preboot.Add(signals.FatalEventFd, _ => signals.OnFatalSignal());
                preboot.Run(() => _vmm != null || _fatalLoad);
            }
            if (_fatalLoad)
            {
                // The failed load's answer is on its way to the client (the API thread writes it): a bounded moment for
                // it, then out, as Firecracker's main returns BuildMicrovmFromRequestsError::Restore (exit 1).
                Thread.Sleep(200);
                Logger.Error("Loading snapshot failed.");
                _vmm?.Dispose();
                return ExitCodes.GenericError;
            }
            if (_vmm == null) return ExitCodes.GenericError;

            using (_vmm)
            {
                if (queued != null) _vmm.EventLoop.Add(queued.Fd, _ => queued.ProcessPending());
                _vmm.EventLoop.Add(signals.FatalEventFd, _ => signals.OnFatalSignal());
                using var timer = new TimerFd();
                timer.Arm(MetricsWriter.Period, MetricsWriter.Period);
                _vmm.EventLoop.Add(timer.Fd, _ => { timer.Read(); _metricsOut.FlushQuietly(); });
                // The VM is built and running: the building code (kernel loader, CPUID, page tables, device set-up)
                // leaves the resident set as start-up's did; the guest's devices fault their code back in.
                ExecutableImage.ReleaseUnwrittenPages();
                // The VMM thread's filter goes on last: every thread exists and every fd is open by now.
                // (Before InstanceStart this thread runs unfiltered: it still has to create the vCPU threads.)
                SeccompFilter.InstallOnCurrentThread(_s.Seccomp, ThreadKind.Vmm);
                int code = _vmm.RunUntilExit();
                _metricsOut.FlushQuietly();
                Logger.Info(code == 0 ? "Firecracker exiting successfully. exit_code=0" : $"Firecracker exiting with error. exit_code={code}");
                ExitUnderFilter(code, server);
                return code;
            }
        }
        finally
        {
            queued?.Dispose();
            server?.Dispose();
            _metricsOut.Dispose();
        }
    }

    /// <summary>
    /// Ends the process once the VM has stopped. This thread runs under the VMM filter by now, and leaving through the
    /// runtime's shutdown makes syscalls that filter does not allow (unregistering signal handlers: rt_sigaction), so
    /// a clean guest reboot ended in exit 148, as first seen on a KVM host. Like Firecracker, finish what must outlive
    /// the VM (the caller flushed metrics and logs; here the API socket file goes) and exit straight away: exit_group
    /// ends the vCPU threads too.
    /// </summary>
    private static void ExitUnderFilter(int code, ApiServer? server)
    {
        server?.RemoveSocketFile();
        // Neither Console.Out nor Console.Error is touched here: the first use of either opens and initialises the
        // terminal (dup, ioctl, pipe2), which no filter allows. The logger writes stdout through write(2) and flushes
        // each line; Console.Out, where the CLI used it before the filters, autoflushes: nothing is left buffered.
        Flint.Sys.Libc.ExitNow(code);
    }

    private int BuildFromConfigFile(VmConfig config, VmmController? controller)
    {
        try
        {
            var running = StartVm(config);
            controller?.AttachRunning(config, running);
            Logger.Info("Successfully started microvm that was configured from one single json");
            return ExitCodes.Ok;
        }
        catch (Exception e) when (IsConfigError(e))
        {
            Logger.Error($"Building VMM configured from cmdline json failed: {e.Message}");
            return ExitCodes.BadConfiguration;
        }
        catch (Exception e) when (IsRuntimeError(e))
        {
            Logger.Error($"Building VMM configured from cmdline json failed: {e.Message}");
            return ExitCodes.GenericError;
        }
    }

    private bool _fatalLoad;

    /// <summary>PUT /snapshot/load: restores the VM Paused, its vCPU threads parked under their filter.</summary>
    private (VmConfig, IRunningVm) LoadSnapshot(SnapshotLoadParams p)
    {
        var (config, vmm) = SnapshotLoader.Load(p, (cfg, mem, plan) => VmBuilder.Build(cfg, NewVmOptions(plan), mem),
            v => v.StartVcpusPaused(() => SeccompFilter.InstallOnCurrentThread(_s.Seccomp, ThreadKind.Vcpu)), Mmds,
            // The process baseline traps the userfaultfd syscall (a kernel exploit's favourite tool); /dev/userfaultfd
            // hands out the same object under the device's file permissions, which the jailer sets.
            _s.Seccomp.IsEnabled ? Flint.Sys.UffdSource.DeviceOnly : Flint.Sys.UffdSource.SyscallThenDevice);
        VmmMetricsBinding.Bind(_metrics, vmm);
        _vmm = vmm;
        return (config, new RunningVm(vmm, _latencies));
    }

    /// <summary>Builds and starts the VM (InstanceStart or --config-file); runs on the main thread.</summary>
    private IRunningVm StartVm(VmConfig config)
    {
        var vmm = VmBuilder.Build(config, NewVmOptions());
        VmmMetricsBinding.Bind(_metrics, vmm);
        vmm.StartVcpus(() => SeccompFilter.InstallOnCurrentThread(_s.Seccomp, ThreadKind.Vcpu));
        _vmm = vmm;
        return new RunningVm(vmm, _latencies) { DevicesChanged = () => VmmMetricsBinding.BindDevices(_metrics, vmm) };
    }

    /// <param name="restore">A snapshot load's plan: its transport (the snapshot's, whatever --enable-pci said) and
    /// where its devices were; null: a boot, with the flag's transport.</param>
    private VmOptions NewVmOptions(RestorePlan? restore = null)
    {
        return new VmOptions
        {
            BootTimer = _s.Options.BootTimer,
            EnablePci = restore?.Pci ?? _s.Options.EnablePci,
            Restore = restore,
            CpuTemplate = _s.Options.CpuTemplate,
            ConsoleOutput = _s.Options.ConsoleOutput,
            ConsoleInputFd = _s.Options.ConsoleInputFd,
            KvmPath = _s.Options.KvmPath,
            MmdsStore = Mmds,
            Preopened = _preopened,
        };
    }

    private bool TryConfigureMetrics(string path, out string error)
    {
        error = "";
        try
        {
            _metricsOut.Configure(path);
            return true;
        }
        catch (ConfigException e)
        {
            error = $"Cannot initialize metrics at {path}: {e.Message}";
            return false;
        }
    }

    /// <summary>Applies the config file's "logger" and "metrics" sections; the error text when one cannot be applied.</summary>
    private string? ApplyConfigFileOutputs(VmConfig config)
    {
        try
        {
            ConfigOutputs.Apply(config, _metricsOut, _s.Id);
            return null;
        }
        catch (ConfigException e) { return e.Message; }
    }

    /// <summary>
    /// api_server.process_startup_time(_cpu)_us. Under the jailer, `--start-time-us` (CLOCK_MONOTONIC µs when the jailer
    /// started) and `--parent-cpu-time-us` make it cover the jailer too, as in Firecracker; otherwise it runs from
    /// this process's start (the Stopwatch is CLOCK_MONOTONIC on Linux, so the two clocks agree).
    /// </summary>
    private void RecordStartupTime()
    {
        long nowUs = (long)(Stopwatch.GetTimestamp() * (1_000_000.0 / Stopwatch.Frequency));
        long us = _s.JailerStartTimeUs is { } start
            ? nowUs - start
            : (long)Stopwatch.GetElapsedTime(_startTimestamp).TotalMicroseconds;
        // CPU time survives exec, so the jailer's own CPU before it took --start-time-cpu-us is taken back out.
        long cpuUs = (long)Flint.Sys.ProcessClock.CpuTime().TotalMicroseconds
            - (_s.JailerStartCpuUs ?? 0) + (_s.ParentCpuTimeUs ?? 0);
        _metrics.Bind("api_server", "process_startup_time_us", () => us);
        _metrics.Bind("api_server", "process_startup_time_cpu_us", () => cpuUs);
    }

    internal static bool IsConfigError(Exception e) =>
        e is ConfigException or KernelLoadException or InitrdLoadException or KernelCmdlineException;

    internal static bool IsRuntimeError(Exception e) =>
        e is SysException or IOException or InvalidOperationException or Flint.Memory.GuestMemoryException or ArgumentException;
}
