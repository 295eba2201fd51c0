using System.Text.Json;
using System.Text.RegularExpressions;
using Flint.Vmm.Config;
using Flint.Vmm.Rpc;

namespace Flint.Vmm.Tests;

/// <summary>
/// Firecracker's fault_message texts, byte for byte: "&lt;Area&gt; error: &lt;inner&gt;" (rpc_interface.rs VmmActionError),
/// inner texts from src/vmm/src/vmm_config/*.rs, serde_json's syntax errors, Rust io::Error's OS text; and no .NET
/// text in any answer. Each case cites the Firecracker test it is ported from.
/// </summary>
public class ParityErrorTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();
    private readonly string _kernel, _disk;

    public ParityErrorTests()
    {
        _kernel = Path.Combine(_dir, "vmlinux");
        _disk = Path.Combine(_dir, "disk");
        File.WriteAllBytes(_kernel, new byte[64]);
        File.WriteAllBytes(_disk, new byte[4096]);
    }

    public void Dispose() => Directory.Delete(_dir, true);

    private static VmmController NewController() => new(_ => throw new InvalidOperationException("not started in these tests"))
    {
        ConfigureLogger = _ => { },
        ConfigureMetrics = _ => { },
    };

    private static string Fault(ApiResponse r)
    {
        Assert.Equal(400, r.Status);
        return JsonDocument.Parse(r.Body!).RootElement.GetProperty("fault_message").GetString()!;
    }

    private const string Body = "An error occurred when deserializing the json body of a request: ";

    // serde_json's syntax errors, as Firecracker's parsed_request.rs wraps them ("...of a request: {0}.").
    // Cases from serde_json's tests/test.rs (test_parse_list, test_parse_object, test_parse_number, test_parse_string,
    // test_parse_null/bool) that Firecracker's API inherits; the machine-config ones from test_api.py test_api_machine_config.
    [Theory]
    [InlineData("}", "expected value at line 1 column 1")]
    [InlineData("[", "EOF while parsing a list at line 1 column 1")]
    [InlineData("[ ", "EOF while parsing a list at line 1 column 2")]
    [InlineData("[1", "EOF while parsing a list at line 1 column 2")]
    [InlineData("[1,", "EOF while parsing a value at line 1 column 3")]
    [InlineData("[1,]", "trailing comma at line 1 column 4")]
    [InlineData("[1 2]", "expected `,` or `]` at line 1 column 4")]
    [InlineData("[]a", "trailing characters at line 1 column 3")]
    [InlineData("{", "EOF while parsing an object at line 1 column 1")]
    [InlineData("{ ", "EOF while parsing an object at line 1 column 2")]
    [InlineData("{1", "key must be a string at line 1 column 2")]
    [InlineData("{\"a\"", "EOF while parsing an object at line 1 column 4")]
    [InlineData("{\"a\" 1", "expected `:` at line 1 column 6")]
    [InlineData("{\"a\":1 1", "expected `,` or `}` at line 1 column 8")]
    [InlineData("{\"a\":1,", "EOF while parsing a value at line 1 column 7")]
    [InlineData("{\"a\":1,}", "trailing comma at line 1 column 8")]
    [InlineData("{}a", "trailing characters at line 1 column 3")]
    [InlineData("+", "expected value at line 1 column 1")]
    [InlineData("-", "EOF while parsing a value at line 1 column 1")]
    [InlineData("00", "invalid number at line 1 column 2")]
    [InlineData("1.", "EOF while parsing a value at line 1 column 2")]
    [InlineData("1.a", "invalid number at line 1 column 3")]
    [InlineData("1e+", "EOF while parsing a value at line 1 column 3")]
    [InlineData("nul", "EOF while parsing a value at line 1 column 3")]
    [InlineData("nulla", "trailing characters at line 1 column 5")]
    [InlineData("\"lol", "EOF while parsing a string at line 1 column 4")]
    [InlineData("\"\n\"", "control character (\\u0000-\\u001F) found while parsing a string at line 2 column 0")]
    [InlineData("\"\\uD83C\\uFFFF\"", "lone leading surrogate in hex escape at line 1 column 13")]
    [InlineData("{\n  \"vcpu_count\": 1,\n}", "trailing comma at line 3 column 1")]
    public void Syntax_errors_read_like_serde_json(string body, string serde)
    {
        Assert.Equal(Body + serde + ".", Fault(NewController().Handle("PUT", "/machine-config", body)));
    }

    // test_api.py test_api_machine_config: "missing field `vcpu_count` at line 1 column 21." and `mem_size_mib` at 17.
    [Theory]
    [InlineData("{\"mem_size_mib\": 128}", "missing field `vcpu_count` at line 1 column 21")]
    [InlineData("{\"vcpu_count\": 2}", "missing field `mem_size_mib` at line 1 column 17")]
    public void Missing_fields_name_the_field_and_position(string body, string serde)
    {
        Assert.Equal(Body + serde + ".", Fault(NewController().Handle("PUT", "/machine-config", body)));
    }

    // test_api.py test_api_put_update_pre_boot: "The kernel file cannot be opened: No such file or directory (os error 2)",
    // composed by VmmActionError::BootSource ("Boot source error: {0}").
    [Fact]
    public void Boot_source_errors_carry_the_area_and_the_os_error()
    {
        var c = NewController();
        Assert.Equal("Boot source error: The kernel file cannot be opened: No such file or directory (os error 2)",
            Fault(c.Handle("PUT", "/boot-source", "{\"kernel_image_path\": \"foo.bar\"}")));
        Assert.Equal("Boot source error: The initrd file cannot be opened due to invalid path or invalid permissions. No such file or directory (os error 2)",
            Fault(c.Handle("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{_kernel}\", \"initrd_path\": \"/nonexistent/initrd\"}}")));
        Assert.Equal("Boot source error: The kernel file cannot be opened: Is a directory (os error 21)",
            Fault(c.Handle("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{_dir}\"}}")));
    }

    // test_api.py test_api_put_update_pre_boot / test_api_patch_pre_boot: "Error manipulating the backing file: No such
    // file or directory (os error 2) {path}" and "A root block device already exists" (DriveError, "Drive config error: ").
    [Fact]
    public void Drive_errors_are_firecrackers()
    {
        var c = NewController();
        Assert.Equal("Drive config error: Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: No such file or directory (os error 2) foo.bar",
            Fault(c.Handle("PUT", "/drives/rootfs", "{\"drive_id\": \"rootfs\", \"path_on_host\": \"foo.bar\", \"is_root_device\": true, \"is_read_only\": true}")));
        Assert.Equal(204, c.Handle("PUT", "/drives/rootfs", $"{{\"drive_id\": \"rootfs\", \"path_on_host\": \"{_disk}\", \"is_root_device\": true}}").Status);
        Assert.Equal("Drive config error: A root block device already exists!",
            Fault(c.Handle("PUT", "/drives/scratch", $"{{\"drive_id\": \"scratch\", \"path_on_host\": \"{_disk}\", \"is_root_device\": true}}")));
    }

    // machine_config.rs MachineConfigError's Display; test_api.py test_api_machine_config ("The memory size (MiB) is
    // either 0, or not a multiple of the configured page size.").
    [Theory]
    [InlineData("{\"vcpu_count\": 0, \"mem_size_mib\": 128}", "Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.")]
    [InlineData("{\"vcpu_count\": 33, \"mem_size_mib\": 128}", "Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.")]
    [InlineData("{\"vcpu_count\": 3, \"mem_size_mib\": 128, \"smt\": true}", "Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.")]
    [InlineData("{\"vcpu_count\": 1, \"mem_size_mib\": 0}", "Machine config error: The memory size (MiB) is either 0, or not a multiple of the configured page size.")]
    [InlineData("{\"vcpu_count\": 1, \"mem_size_mib\": 129, \"huge_pages\": \"2M\"}", "Machine config error: The memory size (MiB) is either 0, or not a multiple of the configured page size.")]
    public void Machine_config_errors_are_firecrackers(string body, string expected)
    {
        Assert.Equal(expected, Fault(NewController().Handle("PUT", "/machine-config", body)));
    }

    // test_api.py test_api_mmds_config; the prefix is Firecracker's, typo included (VmmActionError::MmdsConfig
    // "MMMDS config error: {0}").
    [Fact]
    public void Mmds_config_errors_are_firecrackers()
    {
        var c = NewController();
        Assert.Equal("MMMDS config error: The list of network interface IDs that allow forwarding MMDS requests is empty.",
            Fault(c.Handle("PUT", "/mmds/config", "{\"network_interfaces\": []}")));
        Assert.Equal("MMMDS config error: The list of network interface IDs provided contains at least one ID that does not correspond to any existing network interface.",
            Fault(c.Handle("PUT", "/mmds/config", "{\"network_interfaces\": [\"foo\"]}")));
        Assert.Equal(204, c.Handle("PUT", "/network-interfaces/1", "{\"iface_id\": \"1\", \"host_dev_name\": \"tapPe0\"}").Status);
        Assert.Equal("MMMDS config error: The MMDS IPv4 address is not link local.",
            Fault(c.Handle("PUT", "/mmds/config", "{\"network_interfaces\": [\"1\"], \"ipv4_address\": \"10.0.0.1\"}")));
        Assert.Equal(Body + "unknown variant `foo`, expected `V1` or `V2` at line 1 column 17.",
            Fault(c.Handle("PUT", "/mmds/config", "{\"version\": \"foo\", \"network_interfaces\": [\"1\"]}")));
    }

    // test_api.py test_api_put_update_pre_boot: "The MAC address is already in use: 06:00:00:00:00:01" (no period);
    // NetworkInterfaceError, "Network config error: ".
    [Fact]
    public void Network_errors_are_firecrackers()
    {
        var c = NewController();
        Assert.Equal(204, c.Handle("PUT", "/network-interfaces/1", "{\"iface_id\": \"1\", \"host_dev_name\": \"tapPe1\", \"guest_mac\": \"06:00:00:00:00:01\"}").Status);
        Assert.Equal("Network config error: The MAC address is already in use: 06:00:00:00:00:01",
            Fault(c.Handle("PUT", "/network-interfaces/2", "{\"iface_id\": \"2\", \"host_dev_name\": \"tapPe2\", \"guest_mac\": \"06:00:00:00:00:01\"}")));
        Assert.StartsWith("Network config error: Could not create the network device: Open tap device failed: ",
            Fault(c.Handle("PUT", "/network-interfaces/3", "{\"iface_id\": \"3\", \"host_dev_name\": \"tapPe1\"}")));
    }

    // rpc_interface.rs: Logger, Metrics, BalloonConfig and StartMicrovm variants; logging.rs LoggerUpdateError
    // ("Failed to open target file: {0}"), metrics.rs MetricsConfigError, balloon.rs TooManyPagesRequested,
    // builder.rs MissingKernelConfig.
    [Fact]
    public void Other_areas_carry_their_prefix()
    {
        var c = new VmmController(_ => throw new InvalidOperationException("unused"))
        {
            ConfigureLogger = _ => throw new FileNotFoundException("Could not find file '/x/log'.", "/x/log"),
            ConfigureMetrics = _ => throw new UnauthorizedAccessException("Access to the path '/x' is denied."),
        };
        Assert.Equal("Logger error: Failed to open target file: No such file or directory (os error 2)",
            Fault(c.Handle("PUT", "/logger", "{\"log_path\": \"/x/log\"}")));
        Assert.Equal("Metrics error: Cannot initialize the metrics system due to bad user input: Permission denied (os error 13)",
            Fault(c.Handle("PUT", "/metrics", "{\"metrics_path\": \"/x\"}")));
        Assert.Equal("Balloon config error: Amount of pages requested is too large.",
            Fault(c.Handle("PUT", "/balloon", "{\"amount_mib\": 100000, \"deflate_on_oom\": false}")));
        Assert.Equal("Start microvm error: Cannot start microvm without kernel configuration.",
            Fault(c.Handle("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}")));
    }

    // Values serde accepts but Flint's model cannot hold (usize beyond i64) and .NET-only failures read as Flint's
    // sentence, never as .NET's exception text ("Arithmetic operation resulted in an overflow.").
    [Fact]
    public void Out_of_range_values_are_refused_without_dotnet_text()
    {
        Assert.Equal(Body + "a value is out of the range this build of Flint supports.",
            Fault(NewController().Handle("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 18446744073709551615}")));
        Assert.Equal("a value is not in the expected format", FaultText.Inner(new FormatException("Input string was not in a correct format.")));
        Assert.Equal("No such file or directory (os error 2)", FaultText.Inner(new DirectoryNotFoundException("Could not find a part of the path '/x'.")));
        // builder.rs StartMicrovmError::Kvm(KvmError::Kvm): what a missing or inaccessible /dev/kvm reads as.
        Assert.Equal("Kvm error: Error creating KVM object: No such file or directory (os error 2) Make sure the user launching the firecracker process is configured on the /dev/kvm file's ACL.",
            FaultText.StartFailure(new Flint.Kvm.KvmException("open /dev/kvm", 2)));
    }

    [Fact]
    public void Prefixes_are_added_once_and_only_where_firecracker_has_them()
    {
        Assert.Equal("Boot source error: x", FaultText.Compose("Boot source error: ", "x"));
        Assert.Equal("Boot source error: x", FaultText.Compose("Boot source error: ", "Boot source error: x"));
        Assert.Null(FaultText.Prefix(new GetVmConfig(), false));
        Assert.Equal("MMMDS config error: ", FaultText.Prefix(new PutMmdsConfig("V1", [], "169.254.169.254", default), false));
        // OperationNotSupportedPreBoot has no area.
        Assert.Equal(VmmController.NotSupportedBeforeStart, Fault(NewController().Handle("PATCH", "/vm", "{\"state\": \"Paused\"}")));
    }

    // ---- no .NET text anywhere ----

    /// <summary>What .NET's own error text looks like: resource keys (IO_FileNotFound_FileName, UnmappedJsonProperty,
    /// ExpectedStartOfValueNotFound), reader positions, type names, stack frames.</summary>
    private static readonly Regex DotNetText = new(
        @"LineNumber|BytePositionInLine|Path: \$|System\.[A-Z]|Flint\.[A-Z]|Exception|\b[A-Z][A-Za-z]*_[A-Z][A-Za-z_]*\b|\b[A-Z][a-z]+(?:[A-Z][a-z]+){2,}\b|0x[0-9A-F]{2}\b| at [A-Z]\w+\.",
        RegexOptions.CultureInvariant);

    /// <summary>Firecracker's own words that look like the pattern: backticked names, serde's "struct X", "Invalid
    /// TUN/TAP" and the enum names it lists.</summary>
    private static string WithoutFirecrackerNames(string s) =>
        Regex.Replace(Regex.Replace(s, @"`[^`]*`", "``"), @"struct \w+", "struct");

    internal static void AssertNoDotNetText(string message)
    {
        var m = DotNetText.Match(WithoutFirecrackerNames(message));
        Assert.False(m.Success, $"\"{m.Value}\" looks like .NET text in: {message}");
    }

    public static readonly string[] Malformed =
    [
        "", " ", "}", "{", "[", "]", "{,}", "{\"a\":}", "{\"a\" 1}", "{\"a\":1,}", "[1,]", "{\"a\":1}}", "nul", "tru", "-", "1.", "01",
        "1e", "\"\\x\"", "\"\\u12\"", "\"\\uD800\"", "\"\t\"", "{\"a\":\"\u0001\"}", "{'a': 1}", "{a: 1}", "/* c */ {}", "{} // c",
        "NaN", "Infinity", "{\"vcpu_count\": 1e3, \"mem_size_mib\": 1}", "{\"vcpu_count\": -1, \"mem_size_mib\": 1}",
        "{\"vcpu_count\": 256, \"mem_size_mib\": 1}", "{\"vcpu_count\": 18446744073709551616, \"mem_size_mib\": 1}",
        "{\"vcpu_count\": \"1\", \"mem_size_mib\": 1}", "{\"vcpu_count\": 1, \"vcpu_count\": 1, \"mem_size_mib\": 1}",
        "{\"pmem\": []}", "{\"x\": 1}", "[]", "null", "true", "1", "\"s\"", new string('[', 200) + new string(']', 200),
        new string('{', 1) + string.Concat(Enumerable.Repeat("\"a\":{", 150)) + string.Concat(Enumerable.Repeat("}", 151)),
        "{\"drive_id\": \"x\", \"is_root_device\": \"yes\"}", "{\"iface_id\": 1}", "{\"guest_mac\": \"zz\"}",
        "{\"amount_mib\": 1.5, \"deflate_on_oom\": true}", "{\"state\": \"Frozen\"}", "{\"action_type\": \"Reboot\"}",
        "{\"kernel_image_path\": \"/nonexistent\"}", "{\"kernel_image_path\": \"\"}", "{\"kernel_image_path\": \"/proc/self/mem\\u0000\"}",
        "\uFEFF{}", "{\"a\":\"\\uDC00\"}", "{\"log_path\": \"/nonexistent/dir/log\", \"level\": \"Loud\"}",
    ];

    private static readonly (string Method, string Path)[] Targets =
    [
        ("PUT", "/machine-config"), ("PATCH", "/machine-config"), ("PUT", "/boot-source"), ("PUT", "/drives/x"),
        ("PATCH", "/drives/x"), ("PUT", "/network-interfaces/x"), ("PATCH", "/network-interfaces/x"), ("PUT", "/vsock"),
        ("PUT", "/entropy"), ("PUT", "/balloon"), ("PATCH", "/balloon"), ("PUT", "/mmds"), ("PATCH", "/mmds"),
        ("PUT", "/mmds/config"), ("PUT", "/logger"), ("PUT", "/metrics"), ("PUT", "/actions"), ("PATCH", "/vm"),
        ("PUT", "/cpu-config"), ("PUT", "/snapshot/create"), ("PUT", "/snapshot/load"), ("GET", "/machine-config"),
    ];

    [Fact]
    public void No_api_answer_carries_dotnet_text()
    {
        int checkedCount = 0;
        foreach (var body in Malformed)
            foreach (var (method, path) in Targets)
            {
                var r = NewController().Handle(method, path, body);
                if (r.Body == null) continue;
                Assert.NotEqual(500, r.Status);
                if (r.Status >= 400) { AssertNoDotNetText(JsonDocument.Parse(r.Body).RootElement.GetProperty("fault_message").GetString()!); checkedCount++; }
            }
        Assert.True(checkedCount > 500, $"only {checkedCount} faults checked");
    }

    [Fact]
    public void No_config_file_error_carries_dotnet_text()
    {
        foreach (var body in Malformed)
        {
            var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(body));
            AssertNoDotNetText(e.Message);
        }
        // Section-level mistakes inside an otherwise valid file.
        string Ok(string extra) => $"{{\"boot-source\": {{\"kernel_image_path\": \"{_kernel}\"}}, \"drives\": []{extra}}}";
        string[] sections =
        [
            ", \"machine-config\": {\"vcpu_count\": 1}", ", \"machine-config\": 5", ", \"drives\": null", ", \"pmem\": [{}]",
            ", \"memory-hotplug\": {}", ", \"balloon\": {\"amount_mib\": -1}", ", \"vsock\": {\"guest_cid\": 1, \"uds_path\": \"x\"}",
            ", \"logger\": {\"level\": \"Loud\"}", ", \"network-interfaces\": [{\"iface_id\": \"a\"}]", ", \"cpu-config\": 7",
            ", \"boot-source\": {\"kernel_image_path\": \"/nonexistent\"}", ", \"mmds-config\": {\"network_interfaces\": [\"z\"]}",
        ];
        foreach (var s in sections)
        {
            var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Ok(s)));
            AssertNoDotNetText(e.Message);
        }
        var missing = Assert.Throws<ConfigException>(() => ConfigLoader.LoadFile(Path.Combine(_dir, "nope.json")));
        Assert.Equal("File operation error: No such file or directory (os error 2)", missing.Message);
    }

    [Fact]
    public void The_pattern_recognises_the_texts_that_used_to_leak()
    {
        foreach (var leaked in new[]
        {
            "Unable to read the configuration file x: IO_FileNotFound_FileName, /x", "UnauthorizedAccess_IODenied_Path, /x",
            "Invalid configuration JSON: UnmappedJsonProperty, pmem, Flint.Vmm.Config.VmConfig",
            "ExpectedStartOfValueNotFound, 0x7D", "TrailingCommaNotAllowedBeforeObjectEnd LineNumber: 0 | BytePositionInLine: 9.",
        })
            Assert.Matches(DotNetText, WithoutFirecrackerNames(leaked));
    }
}
