using Flint.Vmm.Rpc;

namespace Flint.Vmm.Metrics;

/// <summary>
/// Firecracker's per-route API counters: <c>get_api_requests</c>, <c>put_api_requests</c> and
/// <c>patch_api_requests</c>. Each request to a counted resource adds to its <c>*_count</c>. As in Firecracker's
/// api_server/request/*.rs, <c>*_fails</c> counts the requests refused while being parsed (a body that does not
/// deserialize, a missing or mismatched id): one the VMM refuses after parsing (a drive file that cannot be opened, a
/// second InstanceStart) is not a "fail" there, so it is not one here either, once the API server's handler is wrapped
/// with <see cref="ObserveParsed"/> (without it every error answer counts as a fail). Routes Firecracker counts and
/// Flint lacks (PUT /serial, /pmem, /hotplug/memory) are counted and, Flint refusing them, failed. Routes Firecracker
/// keeps no counter for (GET /balloon, PUT /snapshot/create...) are not counted. Recording allocates nothing: the
/// API thread calls it once per request.
/// </summary>
public sealed class ApiRequestMetrics
{
    private enum Slot
    {
        GetInstanceInfo, GetMachineCfg, GetMmds, GetVersion, GetHotplugMemory,
        PutActions, PutBootSource, PutDrive, PutLogger, PutMachineCfg, PutCpuCfg, PutMetrics, PutNetwork, PutMmds, PutVsock,
        PutPmem, PutSerial, PutHotplugMemory,
        PatchDrive, PatchNetwork, PatchMachineCfg, PatchMmds, PatchHotplugMemory, PatchPmem,
        Count,
    }

    private readonly long[] _count = new long[(int)Slot.Count];
    private readonly long[] _fails = new long[(int)Slot.Count];

    /// <summary>Set on the API thread when the request being answered got past the parser to the VMM (and was counted).</summary>
    [ThreadStatic] private static bool t_reachedVmm;

    /// <summary>
    /// The handler the API server should call. A request that parsed is counted here, before the VMM runs it, as
    /// Firecracker counts while parsing (so a FlushMetrics line already counts its own request); <see cref="Record"/>
    /// then counts, with their fail, only the requests the parser refused. The server calls the handler only for
    /// parsed requests, and records each answer on the same thread right after.
    /// </summary>
    public IApiHandler ObserveParsed(IApiHandler inner) => new ParsedObserver(inner, this);

    private sealed class ParsedObserver(IApiHandler inner, ApiRequestMetrics m) : IApiHandler
    {
        public ApiResponse Handle(VmmAction action)
        {
            t_reachedVmm = true;
            var slot = SlotFor(action);
            if (slot != Slot.Count) Interlocked.Increment(ref m._count[(int)slot]);
            return inner.Handle(action);
        }
    }

    /// <summary>
    /// Counts one answered request. <paramref name="path"/> may carry a query string; it is ignored. Without
    /// <see cref="ObserveParsed"/> every request is counted here and every error answer is a fail.
    /// </summary>
    public void Record(string method, string path, int status)
    {
        bool counted = t_reachedVmm;
        t_reachedVmm = false;
        if (counted) return;
        var slot = SlotFor(method, path);
        if (slot == Slot.Count) return;
        Interlocked.Increment(ref _count[(int)slot]);
        if (status >= 400) Interlocked.Increment(ref _fails[(int)slot]);
    }

    /// <summary>The counter of a parsed request (the same routes as <see cref="SlotFor(string, string)"/>).</summary>
    private static Slot SlotFor(VmmAction a) => a switch
    {
        GetVmInstanceInfo => Slot.GetInstanceInfo,
        GetMachineConfig => Slot.GetMachineCfg,
        GetMmds => Slot.GetMmds,
        GetVersion => Slot.GetVersion,
        StartMicroVm or SendCtrlAltDel or FlushMetrics => Slot.PutActions,
        PutBootSource => Slot.PutBootSource,
        PutDrive => Slot.PutDrive,
        PutLogger => Slot.PutLogger,
        PutMachineConfig => Slot.PutMachineCfg,
        PutCpuConfig => Slot.PutCpuCfg,
        PutMetrics => Slot.PutMetrics,
        PutNetworkInterface => Slot.PutNetwork,
        PutMmds or PutMmdsConfig => Slot.PutMmds,
        PutVsock => Slot.PutVsock,
        PatchDrive => Slot.PatchDrive,
        PatchNetworkInterface => Slot.PatchNetwork,
        PatchMachineConfig => Slot.PatchMachineCfg,
        PatchMmds => Slot.PatchMmds,
        _ => Slot.Count,
    };

    /// <summary>Binds every counter under Firecracker's group and counter names.</summary>
    public void BindTo(MetricsRegistry r)
    {
        Bind(r, "get_api_requests", "instance_info_count", Slot.GetInstanceInfo, fails: false);
        Bind(r, "get_api_requests", "machine_cfg_count", Slot.GetMachineCfg, fails: false);
        Bind(r, "get_api_requests", "mmds_count", Slot.GetMmds, fails: false);
        Bind(r, "get_api_requests", "vmm_version_count", Slot.GetVersion, fails: false);
        Bind(r, "get_api_requests", "hotplug_memory_count", Slot.GetHotplugMemory, fails: false);
        foreach (var (name, slot) in new[] { ("actions", Slot.PutActions), ("boot_source", Slot.PutBootSource), ("drive", Slot.PutDrive),
                     ("logger", Slot.PutLogger), ("machine_cfg", Slot.PutMachineCfg), ("cpu_cfg", Slot.PutCpuCfg), ("metrics", Slot.PutMetrics),
                     ("network", Slot.PutNetwork), ("mmds", Slot.PutMmds), ("vsock", Slot.PutVsock), ("pmem", Slot.PutPmem),
                     ("serial", Slot.PutSerial), ("hotplug_memory", Slot.PutHotplugMemory) })
            BindPair(r, "put_api_requests", name, slot);
        foreach (var (name, slot) in new[] { ("drive", Slot.PatchDrive), ("network", Slot.PatchNetwork),
                     ("machine_cfg", Slot.PatchMachineCfg), ("mmds", Slot.PatchMmds), ("hotplug_memory", Slot.PatchHotplugMemory),
                     ("pmem", Slot.PatchPmem) })
            BindPair(r, "patch_api_requests", name, slot);
    }

    private void BindPair(MetricsRegistry r, string group, string name, Slot slot)
    {
        Bind(r, group, name + "_count", slot, fails: false);
        Bind(r, group, name + "_fails", slot, fails: true);
    }

    private void Bind(MetricsRegistry r, string group, string name, Slot slot, bool fails)
    {
        var a = fails ? _fails : _count;
        int i = (int)slot;
        r.Bind(group, name, () => Interlocked.Read(ref a[i]));
    }

    /// <summary>"/drives/root?x" -> "drives", "root"; "/" -> "", "".</summary>
    private static void Segments(string path, out ReadOnlySpan<char> first, out ReadOnlySpan<char> second)
    {
        var p = path.AsSpan();
        int q = p.IndexOf('?');
        if (q >= 0) p = p[..q];
        p = p.TrimStart('/');
        int s = p.IndexOf('/');
        if (s < 0) { first = p; second = []; return; }
        var rest = p[(s + 1)..];
        int t = rest.IndexOf('/');
        first = p[..s];
        second = t >= 0 ? rest[..t] : rest;
    }

    /// <summary>Firecracker's routing (api_server/parsed_request.rs): the first path segment picks the counter, and
    /// hotplug counts only as /hotplug/memory.</summary>
    private static Slot SlotFor(string method, string path)
    {
        Segments(path, out var first, out var second);
        bool memory = first.SequenceEqual("hotplug") && second.SequenceEqual("memory");
        return method switch
        {
            "GET" => first switch
            {
                "" => Slot.GetInstanceInfo,
                "machine-config" => Slot.GetMachineCfg,
                "mmds" => Slot.GetMmds,
                "version" => Slot.GetVersion,
                "hotplug" when memory => Slot.GetHotplugMemory,
                _ => Slot.Count,
            },
            "PUT" => first switch
            {
                "actions" => Slot.PutActions,
                "boot-source" => Slot.PutBootSource,
                "drives" => Slot.PutDrive,
                "logger" => Slot.PutLogger,
                "machine-config" => Slot.PutMachineCfg,
                "cpu-config" => Slot.PutCpuCfg,
                "metrics" => Slot.PutMetrics,
                "network-interfaces" => Slot.PutNetwork,
                "mmds" => Slot.PutMmds,
                "vsock" => Slot.PutVsock,
                "pmem" => Slot.PutPmem,
                "serial" => Slot.PutSerial,
                "hotplug" when memory => Slot.PutHotplugMemory,
                _ => Slot.Count,
            },
            "PATCH" => first switch
            {
                "drives" => Slot.PatchDrive,
                "network-interfaces" => Slot.PatchNetwork,
                "machine-config" => Slot.PatchMachineCfg,
                "mmds" => Slot.PatchMmds,
                "pmem" => Slot.PatchPmem,
                "hotplug" when memory => Slot.PatchHotplugMemory,
                _ => Slot.Count,
            },
            _ => Slot.Count,
        };
    }
}
