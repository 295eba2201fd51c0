using System.Diagnostics;
using Flint.Client;
using Flint.Client.Models;
using Flint.Sys;

namespace Flint.Pool;

/// <summary>
/// Starts each slot as Firecracker is deployed: <c>flint-jailer</c> (own uid/gid, chroot, mount namespace, cgroup
/// limits, seccomp in flint) running <c>flint --api-sock /run/api.sock</c>; the VM is configured through
/// <see cref="FirecrackerClient"/>, booted or restored from the function's snapshot (resumed, with this slot's vsock
/// socket), and is ready once the in-guest agent answers PING. No TAP: the vsock Unix socket is the only way in.
/// Any failure kills the process and removes the jail before the error is thrown.
/// </summary>
public sealed class JailedSlotLauncher : ISlotLauncher
{
    private readonly PoolOptions _o;
    private readonly UidAllocator _uids;

    public JailedSlotLauncher(PoolOptions options)
    {
        _o = options;
        _uids = new UidAllocator(options.UidBase, options.UidCount);
    }

    public UidAllocator Uids => _uids;

    private string FunctionDir(FunctionSpec s) => Path.Combine(_o.FunctionsDir, s.Name);

    /// <summary>
    /// Copies the function's files into the pool directory once (root-owned, mode 0644): every slot then gets hard
    /// links to them, which share one page cache (a snapshot's memory file is read once for all clones), and a file
    /// the user changes or deletes later does not change a registered function.
    /// </summary>
    public async Task PrepareFunctionAsync(FunctionSpec spec, CancellationToken ct)
    {
        int longest = JailLayout.LongestSocketPath(_o, spec.Name.Length + 11);
        if (longest > 107)
            throw new PoolException(PoolErrorKind.BadRequest, $"The pool directory {_o.PoolDir} is too long: slot socket paths would be {longest} bytes (at most 107).");
        string dir = FunctionDir(spec);
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        Directory.CreateDirectory(dir);
        Directory.CreateDirectory(_o.JailsDir);
        try
        {
            foreach (var (src, name) in Files(spec))
                await CopyInAsync(src, Path.Combine(dir, name), ct);
        }
        catch
        {
            Directory.Delete(dir, true);
            throw;
        }
    }

    public Task ForgetFunctionAsync(FunctionSpec spec)
    {
        string dir = FunctionDir(spec);
        try { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
        catch (IOException) { }
        return Task.CompletedTask;
    }

    private static IEnumerable<(string Src, string Name)> Files(FunctionSpec s)
    {
        if (s.Snapshot is { } snap)
        {
            yield return (snap.StatePath, "snapshot.state");
            yield return (snap.MemPath, "snapshot.mem");
        }
        else if (s.KernelPath != null) yield return (s.KernelPath, "vmlinux");
        if (s.RootfsPath != null) yield return (s.RootfsPath, "rootfs.ext4");
    }

    private static async Task CopyInAsync(string src, string dst, CancellationToken ct)
    {
        if (!File.Exists(src)) throw new PoolException(PoolErrorKind.BadRequest, $"{src} does not exist or is not a file.");
        try
        {
            await using (var from = new FileStream(src, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, useAsync: true))
            await using (var to = new FileStream(dst, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20, useAsync: true))
                await from.CopyToAsync(to, ct);
            File.SetUnixFileMode(dst, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }
        catch (UnauthorizedAccessException)
        {
            throw new PoolException(PoolErrorKind.BadRequest, $"{src} cannot be read by flint-pool (permission denied).");
        }
    }

    public async Task<ISlot> LaunchAsync(FunctionSpec spec, string slotId, CancellationToken ct)
    {
        var jail = new JailLayout(_o, slotId);
        uint uid = _uids.Take();
        var output = new OutputTail();
        Process? p = null;
        FirecrackerClient? api = null;
        AgentClient? agent = null;
        string stage = "starting flint-jailer";
        try
        {
            p = StartJailer(spec, slotId, uid, output);
            stage = "waiting for flint's API socket";
            await WaitForFileAsync(jail.Host(JailLayout.ApiSock), p, output, ct);
            PlaceFiles(spec, jail, uid);
            api = new FirecrackerClient(jail.Host(JailLayout.ApiSock), new FirecrackerClientOptions { RequestTimeout = TimeSpan.FromSeconds(20) });
            stage = spec.IsSnapshot ? "loading the snapshot" : "configuring and booting the VM";
            try
            {
                await ConfigureAsync(spec, api, ct);
            }
            catch (FirecrackerApiException e)
            {
                throw new PoolException(PoolErrorKind.LaunchFailed, $"slot {slotId}: flint refused {e.Method} {e.Path}: {e.FaultMessage}");
            }
            catch (Exception e) when (e is TimeoutException or HttpRequestException or FirecrackerClientException)
            {
                throw new PoolException(PoolErrorKind.LaunchFailed, $"slot {slotId}: flint's API failed during configuration ({output.Last()})");
            }
            stage = $"waiting for the agent's PONG on vsock port {spec.AgentPort}";
            agent = await ConnectAgentAsync(spec, jail, p, output, ct);
            return new JailedSlot(p, api, agent, jail, _o, _uids, uid, output, spec.MaxResultBytes);
        }
        catch (OperationCanceledException e)
        {
            // The pool's ready deadline (or a drain): say where the slot was, and what the VM last printed.
            await Cleanup();
            throw new PoolException(PoolErrorKind.LaunchFailed,
                $"slot {slotId} was not ready within {spec.ReadyTimeout.TotalSeconds:0.#} s, while {stage}"
                + (e.Message.StartsWith("the agent never", StringComparison.Ordinal) ? $": {e.Message}" : "") + $" ({output.Last()})", e);
        }
        catch
        {
            await Cleanup();
            throw;
        }

        async Task Cleanup()
        {
            agent?.Dispose();
            api?.Dispose();
            if (p != null) await JailedSlot.StopProcessAsync(p);
            await SlotCleanup.RemoveAsync(_o, jail);
            _uids.Return(uid);
        }
    }

    private Process StartJailer(FunctionSpec spec, string slotId, uint uid, OutputTail output)
    {
        var psi = new ProcessStartInfo(_o.JailerPath)
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        string u = uid.ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var a in new[] { "--id", slotId, "--exec-file", _o.FlintPath, "--uid", u, "--gid", u, "--chroot-base-dir", _o.JailsDir })
            psi.ArgumentList.Add(a);
        var cgroups = spec.Cgroups ?? DefaultCgroups(spec);
        if (cgroups.Count > 0)
        {
            psi.ArgumentList.Add("--cgroup-version");
            psi.ArgumentList.Add(_o.ResolvedCgroupVersion == 2 ? "2" : "1");
            psi.ArgumentList.Add("--parent-cgroup");
            psi.ArgumentList.Add(_o.ParentCgroup);
            foreach (var c in cgroups)
            {
                psi.ArgumentList.Add("--cgroup");
                psi.ArgumentList.Add(c);
            }
        }
        foreach (var a in new[] { "--", "--api-sock", JailLayout.ApiSock })
            psi.ArgumentList.Add(a);
        Process p;
        try { p = Process.Start(psi) ?? throw new PoolException(PoolErrorKind.LaunchFailed, $"slot {slotId}: flint-jailer did not start."); }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new PoolException(PoolErrorKind.LaunchFailed, $"slot {slotId}: cannot run {_o.JailerPath}.");
        }
        p.StandardInput.Close(); // the guest console reads stdin: give it none
        p.OutputDataReceived += (_, e) => output.Add(e.Data);
        p.ErrorDataReceived += (_, e) => output.Add(e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    /// <summary>A memory limit of guest RAM plus the VMM's overhead, and a thread/process cap.</summary>
    public IReadOnlyList<string> DefaultCgroups(FunctionSpec spec)
    {
        if (!_o.DefaultCgroupLimits) return [];
        long bytes = (long)(spec.MemSizeMib + _o.MemoryOverheadMib) << 20;
        return _o.ResolvedCgroupVersion == 2
            ? [$"memory.max={bytes}", $"pids.max={_o.PidsMax}"]
            : [$"memory.limit_in_bytes={bytes}", $"pids.max={_o.PidsMax}"];
    }

    private static async Task WaitForFileAsync(string path, Process p, OutputTail output, CancellationToken ct)
    {
        while (!File.Exists(path))
        {
            if (p.HasExited)
                throw new PoolException(PoolErrorKind.LaunchFailed, $"flint-jailer exited with code {p.ExitCode} before flint served its API ({output.Last()})");
            await Task.Delay(5, ct);
        }
    }

    /// <summary>Hard links to the function's shared files; a writable rootfs is a private copy owned by the slot's uid.</summary>
    private void PlaceFiles(FunctionSpec spec, JailLayout jail, uint uid)
    {
        string dir = FunctionDir(spec);
        void Link(string name, string jailPath)
        {
            string src = Path.Combine(dir, name), dst = jail.Host(jailPath);
            if (HostFiles.TryLink(src, dst) != 0) File.Copy(src, dst);
        }
        if (spec.Snapshot != null)
        {
            Link("snapshot.state", JailLayout.SnapshotState);
            Link("snapshot.mem", JailLayout.SnapshotMem);
        }
        else Link("vmlinux", JailLayout.Kernel);
        if (spec.RootfsPath != null)
        {
            if (spec.RootfsReadOnly) Link("rootfs.ext4", JailLayout.Rootfs);
            else
            {
                File.Copy(Path.Combine(dir, "rootfs.ext4"), jail.Host(JailLayout.Rootfs));
                HostFiles.Chown(jail.Host(JailLayout.Rootfs), uid, uid);
            }
        }
        File.WriteAllBytes(jail.Host(JailLayout.MetricsFile), []);
        HostFiles.Chown(jail.Host(JailLayout.MetricsFile), uid, uid);
    }

    private static async Task ConfigureAsync(FunctionSpec spec, FirecrackerClient api, CancellationToken ct)
    {
        await api.PutMetricsAsync(new Metrics { MetricsPath = JailLayout.MetricsFile }, ct);
        if (spec.Snapshot != null)
        {
            await api.LoadSnapshotAsync(new SnapshotLoadParams
            {
                SnapshotPath = JailLayout.SnapshotState,
                MemBackend = new MemoryBackend { BackendType = MemoryBackendType.File, BackendPath = JailLayout.SnapshotMem },
                ResumeVm = true,
                VsockOverride = new VsockOverride { UdsPath = JailLayout.VsockPath },
            }, ct);
            return;
        }
        await api.PutBootSourceAsync(new BootSource { KernelImagePath = JailLayout.Kernel, BootArgs = spec.FullBootArgs }, ct);
        await api.PutMachineConfigAsync(new MachineConfiguration { VcpuCount = spec.VcpuCount, MemSizeMib = spec.MemSizeMib }, ct);
        if (spec.RootfsPath != null)
            await api.PutDriveAsync(new Drive { DriveId = "rootfs", PathOnHost = JailLayout.Rootfs, IsRootDevice = true, IsReadOnly = spec.RootfsReadOnly }, ct);
        await api.PutVsockAsync(new Vsock { GuestCid = 3, UdsPath = JailLayout.VsockPath }, ct);
        await api.StartInstanceAsync(ct);
    }

    /// <summary>
    /// Connects to the agent and waits for its PONG. Until the guest's agent listens, Flint closes the connection
    /// without an OK line (the guest reset it); that is retried every 10 ms until the launch's deadline.
    /// </summary>
    private static async Task<AgentClient> ConnectAgentAsync(FunctionSpec spec, JailLayout jail, Process p, OutputTail output, CancellationToken ct)
    {
        string uds = jail.Host(JailLayout.VsockPath);
        string last = "";
        while (true)
        {
            if (p.HasExited)
                throw new PoolException(PoolErrorKind.LaunchFailed, $"slot {jail.SlotId}: the VM exited (code {p.ExitCode}) before its agent answered ({output.Last()})");
            ct.ThrowIfCancellationRequested();
            AgentClient? a = null;
            try
            {
                a = await AgentClient.ConnectAsync(uds, spec.AgentPort, TimeSpan.FromSeconds(2), ct);
                await a.PingAsync(TimeSpan.FromSeconds(2), ct);
                return a;
            }
            catch (AgentException e) when (e.Failure is AgentFailure.Closed or AgentFailure.Timeout)
            {
                a?.Dispose();
                last = e.Message;
            }
            catch (AgentException e)
            {
                a?.Dispose();
                throw new PoolException(PoolErrorKind.LaunchFailed, $"slot {jail.SlotId}: the agent did not answer PING as the protocol says: {e.Message}");
            }
            try { await Task.Delay(10, ct); }
            catch (OperationCanceledException)
            {
                throw new OperationCanceledException($"the agent never answered (last: {last})", ct);
            }
        }
    }
}
