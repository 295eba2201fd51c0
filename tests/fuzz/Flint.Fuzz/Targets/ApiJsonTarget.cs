using System.Text;
using System.Text.Json;
using Flint.Vmm.Rpc;

namespace Flint.Fuzz.Targets;

/// <summary>
/// The REST router and the JSON body checker behind it: input is "METHOD\nPATH\nBODY". Parse is documented never to
/// throw. Its last-resort catch turns a few .NET exception types into a 400 whose text is the exception's message;
/// reaching it means a body got past the schema check that the typed reads rely on (and .NET text reaches the
/// client), so the target counts that as a finding too: every first-chance exception inside Parse must be a
/// JsonBodyException or come from System.Text.Json's reader (which JsonBody translates).
/// </summary>
public sealed class ApiJsonTarget : IFuzzTarget
{
    public string Name => "api-json";
    public string Description => "Flint.Vmm.Rpc.ApiRequestParser.Parse(method, path, body) from \"METHOD\\nPATH\\nBODY\"; no exception may escape, and none but JsonBodyException / System.Text.Json's own may be thrown inside";

    public bool IsAvailable(out string? reason) { reason = null; return true; }

    public void Run(ReadOnlySpan<byte> input)
    {
        string text = Encoding.UTF8.GetString(input);
        int a = text.IndexOf('\n');
        int b = a < 0 ? -1 : text.IndexOf('\n', a + 1);
        string method = a < 0 ? text : text[..a];
        string path = a < 0 ? "/" : b < 0 ? text[(a + 1)..] : text[(a + 1)..b];
        string? body = b < 0 ? null : text[(b + 1)..];
        ExceptionWatch.Begin();
        _ = ApiRequestParser.Parse(method, path, body);
        ExceptionWatch.End(static e => e is JsonBodyException or JsonException || FromJsonReader(e));
    }

    /// <summary>Thrown by System.Text.Json itself (the reader's InvalidOperationException on a lone surrogate escape): JsonBody translates those.</summary>
    private static bool FromJsonReader(Exception e) =>
        e is InvalidOperationException && e.TargetSite?.DeclaringType?.Assembly.GetName().Name == "System.Text.Json";

    public IEnumerable<(string, byte[])> Seeds()
    {
        (string, string, string?)[] seeds =
        [
            ("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"smt\": false, \"huge_pages\": \"2M\"}"),
            ("PATCH", "/machine-config", "{\"mem_size_mib\": 64}"),
            ("PUT", "/boot-source", "{\"kernel_image_path\": \"/k\", \"boot_args\": \"console=ttyS0\", \"initrd_path\": \"/i\"}"),
            ("PUT", "/drives/rootfs", "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/r\", \"is_root_device\": true, \"is_read_only\": false, \"cache_type\": \"Writeback\", \"rate_limiter\": {\"bandwidth\": {\"size\": 1000, \"refill_time\": 100}, \"ops\": {\"size\": 10, \"one_time_burst\": 5, \"refill_time\": 100}}}"),
            ("PATCH", "/drives/rootfs", "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/r2\"}"),
            ("PUT", "/network-interfaces/eth0", "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"guest_mac\": \"06:00:AC:10:00:02\", \"rx_rate_limiter\": {\"bandwidth\": {\"size\": 1, \"refill_time\": 1}}}"),
            ("PUT", "/vsock", "{\"guest_cid\": 3, \"uds_path\": \"/tmp/v.sock\"}"),
            ("PUT", "/entropy", "{\"rate_limiter\": {\"ops\": {\"size\": 10, \"refill_time\": 100}}}"),
            ("PUT", "/balloon", "{\"amount_mib\": 10, \"deflate_on_oom\": false, \"stats_polling_interval_s\": 1}"),
            ("PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\": 3}"),
            ("PUT", "/mmds", "{\"latest\": {\"meta-data\": {\"a\": [1, 2, {\"b\": null}], \"s\": \"\\u00e9\"}}}"),
            ("PUT", "/mmds/config", "{\"version\": \"V2\", \"network_interfaces\": [\"eth0\"], \"ipv4_address\": \"169.254.170.2\"}"),
            ("PUT", "/logger", "{\"log_path\": \"/tmp/l\", \"level\": \"Warning\", \"show_level\": true, \"show_log_origin\": false}"),
            ("PUT", "/metrics", "{\"metrics_path\": \"/tmp/m\"}"),
            ("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"),
            ("PATCH", "/vm", "{\"state\": \"Paused\"}"),
            ("PUT", "/cpu-config", "{\"kvm_capabilities\": [\"!56\"], \"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0x0\", \"flags\": 0, \"modifiers\": [{\"register\": \"eax\", \"bitmap\": \"0bxxxx000000000011111111111111111111\"}]}], \"msr_modifiers\": [{\"addr\": \"0x10a\", \"bitmap\": \"0b1\"}]}"),
            ("PUT", "/snapshot/load", "{\"snapshot_path\": \"s\", \"mem_backend\": {\"backend_type\": \"Uffd\", \"backend_path\": \"u\"}, \"resume_vm\": true}"),
            ("GET", "/vm/config", null),
        ];
        int i = 0;
        foreach (var (m, p, body) in seeds)
            yield return ($"{i++:D2}-{m.ToLowerInvariant()}{p.Replace('/', '-')}", Encoding.UTF8.GetBytes(body == null ? $"{m}\n{p}" : $"{m}\n{p}\n{body}"));
    }
}
