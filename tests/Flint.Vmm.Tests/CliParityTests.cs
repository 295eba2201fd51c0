using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Flint.Vmm.Tests;

/// <summary>
/// Firecracker's own CLI tests and arg-parser unit tests, ported to the published `flint` binary (Firecracker main,
/// commit 81b38b9d). Each test names the Firecracker file and test it comes from. A Firecracker user who swaps the
/// binary must see the same exit codes, the same parse errors, the same `--help` list and a version their tools parse.
/// </summary>
public class CliParityTests : IDisposable
{
    /// <summary>Firecracker's API version at main (swagger `info.version`, Cargo `version`): what flint reports.</summary>
    private const string FirecrackerVersion = "1.17.0-dev";

    private static readonly TimeSpan T = TimeSpan.FromSeconds(30);
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    private static void AssertParseError(Repo.Result r, string display, string debug)
    {
        Assert.Equal(153, r.ExitCode);
        // main.rs: the error's Display goes to the log (stdout by default), its Debug to stderr.
        Assert.Contains($"Arguments parsing error: {display} \\n\\nFor more information try --help.", r.Stdout);
        Assert.Contains($"Error: ParseArguments({debug})", r.Stderr);
        Assert.Contains("exiting with error. exit_code=153", r.Stdout);
        Assert.DoesNotContain("Exception", r.All);
    }

    // src/utils/src/arg_parser.rs, test_parse: "--invalid-arg" -> UnexpectedArgument("invalid-arg") (name without "--").
    [Fact]
    public void Unknown_flag_is_named_without_its_dashes_and_points_to_help()
    {
        var r = Repo.RunFlint(T, "--api-sock", Path.Combine(_dir, "s"), "--invalid-arg");
        AssertParseError(r, "Found argument 'invalid-arg' which wasn't expected, or isn't valid in this context.",
            "UnexpectedArgument(\"invalid-arg\")");
    }

    // src/utils/src/arg_parser.rs, test_parse: a positional "foo" -> UnexpectedArgument("foo"); and "--no-api foobar".
    [Theory]
    [InlineData("foo")]
    [InlineData("-x")]
    public void Positional_argument_is_unexpected(string arg)
    {
        var r = Repo.RunFlint(T, arg);
        AssertParseError(r, $"Found argument '{arg}' which wasn't expected, or isn't valid in this context.",
            $"UnexpectedArgument(\"{arg}\")");
    }

    // Firecracker's parser has no "--name=value" form: the whole word is the (unknown) argument name.
    [Fact]
    public void Equals_form_is_not_a_value()
    {
        var r = Repo.RunFlint(T, "--id=abc");
        AssertParseError(r, "Found argument 'id=abc' which wasn't expected, or isn't valid in this context.",
            "UnexpectedArgument(\"id=abc\")");
    }

    // src/utils/src/arg_parser.rs, test_parse: "--api-sock --id bar" -> MissingValue("api-sock"): a value never starts
    // with "--"; also "--exec-file foo --describe-snapshot" at the end -> MissingValue.
    [Theory]
    [InlineData("api-sock", "--api-sock", "--id", "bar")]
    [InlineData("id", "--id")]
    [InlineData("describe-snapshot", "--describe-snapshot")]
    [InlineData("describe-snapshot", "--describe-snapshot", "--")]
    public void Value_that_is_missing_or_looks_like_a_flag_is_a_missing_value(string name, params string[] args)
    {
        var r = Repo.RunFlint(T, args);
        AssertParseError(r, $"The argument '{name}' requires a value, but none was supplied.", $"MissingValue(\"{name}\")");
    }

    // src/utils/src/arg_parser.rs, test_parse / test_allow_multiple: DuplicateArgument("api-sock").
    [Fact]
    public void Duplicate_flag_is_named_without_its_dashes()
    {
        var r = Repo.RunFlint(T, "--api-sock", "a", "--api-sock", "b");
        AssertParseError(r, "The argument 'api-sock' was provided more than once.", "DuplicateArgument(\"api-sock\")");
    }

    // src/utils/src/arg_parser.rs, test_parse: "--no-api" without "--config-file" -> MissingArgument("config-file").
    [Fact]
    public void No_api_requires_config_file()
    {
        var r = Repo.RunFlint(T, "--no-api");
        AssertParseError(r, "Argument 'config-file' required, but not found.", "MissingArgument(\"config-file\")");
    }

    // src/utils/src/arg_parser.rs, test_parse: "--seccomp-filter 0 --no-seccomp" (either order) ->
    // ForbiddenArgument("no-seccomp", "seccomp-filter"); main.rs declares the two as forbidding each other.
    [Theory]
    [InlineData("--seccomp-filter", "0", "--no-seccomp")]
    [InlineData("--no-seccomp", "--seccomp-filter", "0")]
    public void Seccomp_filter_and_no_seccomp_exclude_each_other(params string[] args)
    {
        var r = Repo.RunFlint(T, ["--api-sock", Path.Combine(_dir, "s"), .. args]);
        AssertParseError(r, "Argument 'seccomp-filter' cannot be used together with argument 'no-seccomp'.",
            "ForbiddenArgument(\"no-seccomp\", \"seccomp-filter\")");
    }

    // src/utils/src/arg_parser.rs, test_parse: "--help" / "-h" anywhere wins over everything else, even bad arguments.
    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("--bogus", "--help")]
    [InlineData("--id", "x", "-h", "--id", "y")]
    public void Help_wins_over_other_arguments(params string[] args)
    {
        var r = Repo.RunFlint(T, args);
        Assert.Equal(0, r.ExitCode);
        Assert.StartsWith($"Firecracker v{FirecrackerVersion}\n\noptional arguments:\n", r.Stdout);
        Assert.Equal("", r.Stderr);
    }

    // src/firecracker/src/main.rs: the argument list and src/utils/src/arg_parser.rs formatted_help (sorted by name,
    // names padded to the longest, three spaces, help, quoted default). Flint adds one line: its --cpu-template.
    [Fact]
    public void Help_lists_firecrackers_options_in_firecrackers_shape()
    {
        (string Name, string? Value, string Help)[] fc =
        [
            ("api-sock", "api-sock", "Path to unix domain socket used by the API. [default: \"/run/firecracker.socket\"]"),
            ("boot-timer", null, "Whether or not to load boot timer device for logging elapsed time since InstanceStart command."),
            ("config-file", "config-file", "Path to a file that contains the microVM configuration in JSON format."),
            ("describe-snapshot", "describe-snapshot", "Print the data format version of the provided snapshot state file."),
            ("enable-pci", null, "Enables PCIe support."),
            ("help", null, "Show the help message."),
            ("http-api-max-payload-size", "http-api-max-payload-size", "Http API request payload max size, in bytes. [default: \"51200\"]"),
            ("id", "id", "MicroVM unique identifier. [default: \"anonymous-instance\"]"),
            ("level", "level", "Set the logger level."),
            ("log-path", "log-path", "Path to a fifo or a file used for configuring the logger on startup."),
            ("metadata", "metadata", "Path to a file that contains metadata in JSON format to add to the mmds."),
            ("metrics-path", "metrics-path", "Path to a fifo or a file used for configuring the metrics on startup."),
            ("mmds-size-limit", "mmds-size-limit", "Mmds data store limit, in bytes."),
            ("module", "module", "Set the logger module filter."),
            ("no-api", null, "Optional parameter which allows starting and using a microVM without an active API socket."),
            ("no-seccomp", null, "Optional parameter which allows starting and using a microVM without seccomp filtering. Not recommended."),
            ("parent-cpu-time-us", "parent-cpu-time-us", "Parent process CPU time (wall clock, microseconds). This parameter is optional."),
            ("seccomp-filter", "seccomp-filter", "Optional parameter which allows specifying the path to a custom seccomp filter. For advanced users."),
            ("show-level", null, "Whether or not to output the level in the logs."),
            ("show-log-origin", null, "Whether or not to include the file path and line number of the log's origin."),
            ("snapshot-version", null, "Print the supported data format version."),
            ("start-time-cpu-us", "start-time-cpu-us", "Process start CPU time (wall clock, microseconds). This parameter is optional."),
            ("start-time-us", "start-time-us", "Process start time (wall clock, microseconds). This parameter is optional."),
            ("version", null, "Print the binary version number."),
        ];
        var r = Repo.RunFlint(T, "--help");
        Assert.Equal(0, r.ExitCode);
        var lines = r.Stdout.Split('\n');
        Assert.Equal($"Firecracker v{FirecrackerVersion}", lines[0]);
        Assert.Equal("", lines[1]);
        Assert.Equal("optional arguments:", lines[2]);
        var options = lines.Skip(3).Where(l => l.Length > 0).ToList();
        // The one Flint extension sits where its name sorts; everything else is Firecracker's list, line for line.
        int ext = options.FindIndex(l => l.StartsWith("  --cpu-template <cpu-template>", StringComparison.Ordinal));
        Assert.Equal(3, ext);
        options.RemoveAt(ext);
        const int width = 57; // "  --http-api-max-payload-size <http-api-max-payload-size>"
        var expected = fc.Select(o => (o.Value == null ? $"  --{o.Name}" : $"  --{o.Name} <{o.Value}>").PadRight(width) + "   " + o.Help);
        Assert.Equal(expected, options);
        Assert.EndsWith("\n", r.Stdout);
    }

    // tests/framework/microvm.py, firecracker_version: re.match(r"^Firecracker v(.+)", first line of `--version`);
    // src/firecracker/src/main.rs prints "Firecracker v{version}\n" and a blank line, and --version wins over the rest
    // (src/utils/src/arg_parser.rs, test_parse: "--exec-file foo --version").
    [Theory]
    [InlineData("--version")]
    [InlineData("--bogus", "--version")]
    [InlineData("--no-api", "--version")]
    public void Version_prints_firecrackers_line(params string[] args)
    {
        var r = Repo.RunFlint(T, args);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal($"Firecracker v{FirecrackerVersion}\n\n", r.Stdout);
        var m = Regex.Match(r.Stdout.Split('\n')[0], @"^Firecracker v(.+)");
        Assert.True(m.Success);
        Assert.Matches(@"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$", m.Groups[1].Value); // semver
    }

    // Firecracker's parser stops at "--": what follows is left alone (arg_parser.rs, test_parse / test_split).
    [Fact]
    public void Arguments_after_the_separator_are_ignored()
    {
        var r = Repo.RunFlint(T, "--no-api", "--config-file", Path.Combine(_dir, "missing.json"), "--", "--bogus", "x");
        Assert.Equal(1, r.ExitCode); // the config file error, not an argument error
        Assert.DoesNotContain("bogus", r.All);
    }

    // --enable-pci is accepted (Firecracker's main.rs: a switch, no value) and reaches the VM build: with a missing
    // config file the run fails on that file (exit 1), not on the argument (153).
    [Fact]
    public void Pci_flag_is_accepted()
    {
        var r = Repo.RunFlint(T, "--enable-pci", "--no-api", "--config-file", Path.Combine(_dir, "missing.json"));
        Assert.Equal(1, r.ExitCode);
        Assert.DoesNotContain("Unsupported", r.Stderr);
        Assert.DoesNotContain("is not supported", r.Stdout);
    }

    // main.rs: --snapshot-version prints "v" + the state format version and exits 0; --describe-snapshot prints a state
    // file's version, or MainError::PrintSnapshotDataFormat and exit 1 (GenericError).
    [Fact]
    public void Snapshot_version_flags_print_the_format_version()
    {
        var r = Repo.RunFlint(T, "--snapshot-version");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("v1.0.0\n", r.Stdout);

        var f = new Flint.Snapshot.SnapshotFile();
        var file = Path.Combine(_dir, "vmstate");
        File.WriteAllBytes(file, f.Serialize());
        r = Repo.RunFlint(T, "--describe-snapshot", file);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("v1.0.0\n", r.Stdout);

        r = Repo.RunFlint(T, "--describe-snapshot", Path.Combine(_dir, "absent"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("When printing Snapshot Data format: Unable to open snapshot state file: No such file or directory (os error 2)", r.Stdout);

        File.WriteAllText(file, "not a snapshot at all, just text");
        r = Repo.RunFlint(T, "--describe-snapshot", file);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("When printing Snapshot Data format: Invalid data format version of snapshot file: Magic value does not match arch", r.Stdout);
    }

    // src/firecracker/src/main.rs: MainError::InvalidLogLevel -> FcExitCode::BadConfiguration (152), not 153.
    [Fact]
    public void Bad_log_level_exits_152_with_firecrackers_message()
    {
        var r = Repo.RunFlint(T, "--level", "loud", "--api-sock", Path.Combine(_dir, "s"));
        Assert.Equal(152, r.ExitCode);
        Assert.Contains("Invalid value for logger level: Failed to parse string to level filter: loud.Possible values: [Error, Warning, Info, Debug]", r.Stdout);
        Assert.Contains("Error: InvalidLogLevel(LevelFilterFromStrError(\"loud\"))", r.Stderr);
        Assert.False(File.Exists(Path.Combine(_dir, "s")));
    }

    // src/firecracker/src/main.rs, LevelFilter::from_str: case-insensitive, "warn" and "warning" both accepted.
    [Theory]
    [InlineData("warn")]
    [InlineData("WARNING")]
    [InlineData("trace")]
    [InlineData("Off")]
    public void Firecrackers_level_spellings_are_accepted(string level)
    {
        var r = Repo.RunFlint(T, "--level", level, "--no-api", "--config-file", Path.Combine(_dir, "missing.json"));
        Assert.Equal(1, r.ExitCode); // got past the level to the (missing) config file
    }

    // tests/integration_tests/functional/test_cmd_line_start.py, test_config_bad_machine_config: the log says
    // "Configuration for VMM from one single json failed"; main.rs maps RunWithoutApiError::BuildMicroVMFromJson to
    // FcExitCode::GenericError (1): 152 is only for --level.
    [Theory]
    [InlineData("{\"mem_size_mib\": 128}")]
    [InlineData("{\"vcpu_count\": 1}")]
    public void Bad_machine_config_in_config_file_exits_1(string machine)
    {
        var k = Path.Combine(_dir, "k");
        File.WriteAllBytes(k, new byte[16]);
        var cfg = Path.Combine(_dir, "vm.json");
        File.WriteAllText(cfg, $"{{\"boot-source\": {{\"kernel_image_path\": \"{k}\"}}, \"drives\": [], \"machine-config\": {machine}}}");
        var r = Repo.RunFlint(T, "--no-api", "--config-file", cfg);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("Configuration for VMM from one single json failed", r.Stdout);
    }

    // Same mapping with the API on (MainError::RunWithApi(BuildFromJson) -> GenericError), for a kernel that is missing.
    [Fact]
    public void Config_file_build_error_with_api_exits_1()
    {
        var cfg = Path.Combine(_dir, "vm.json");
        File.WriteAllText(cfg, "{\"boot-source\": {\"kernel_image_path\": \"/nonexistent/vmlinux\"}, \"drives\": [], \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 128}}");
        var r = Repo.RunFlint(T, "--api-sock", Path.Combine(_dir, "s"), "--config-file", cfg);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("Boot source error: The kernel file cannot be opened: No such file or directory (os error 2)", r.All); // Firecracker names no path
    }

    // main.rs: fs::read_to_string(config-file).expect("Unable to open or read from the configuration file"). Firecracker
    // aborts there (a panic); flint logs the same words and exits 1, with the OS's reason and no .NET text.
    [Fact]
    public void Unreadable_config_file_says_so_and_exits_1()
    {
        var r = Repo.RunFlint(T, "--no-api", "--config-file", Path.Combine(_dir, "missing.json"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("Unable to open or read from the configuration file", r.Stdout);
        Assert.Contains("No such file or directory", r.Stdout);
        Assert.DoesNotContain("Could not find file", r.All);
    }

    private string CopyMetadata()
    {
        // tests/data/metadata.json in Firecracker.
        var p = Path.Combine(_dir, "metadata.json");
        File.WriteAllText(p, """
            {
                "latest": {
                    "meta-data": "Lorem ipsum dolor sit amet, consectetur adipiscing elit",
                    "user-data": "userdata 1 2 3 4"
                },
                "2016-09-02": {
                    "meta-data": "Lorem ipsum dolor sit amet"
                },
                "2019-08-01": {
                    "some-data": {
                        "field1": "val1",
                        "field2": [1,2,3,4]
                    }
                }
            }
            """);
        return p;
    }

    // tests/integration_tests/functional/test_cmd_line_start.py, test_start_with_metadata_limit and
    // test_start_with_metadata_default_limit: the limit defaults to the API payload limit.
    [Theory]
    [InlineData("--mmds-size-limit", "30")]
    [InlineData("--http-api-max-payload-size", "30")]
    public void Metadata_over_the_limit_is_refused_with_firecrackers_message(string flag, string value)
    {
        var r = Repo.RunFlint(T, "--api-sock", Path.Combine(_dir, "s"), flag, value, "--metadata", CopyMetadata());
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("Populating MMDS from file failed: The MMDS patch request doesn't fit.", r.Stdout);
    }

    // tests/integration_tests/functional/test_cmd_line_start.py, test_start_with_missing_metadata.
    [Fact]
    public void Missing_metadata_file_says_so()
    {
        var r = Repo.RunFlint(T, "--api-sock", Path.Combine(_dir, "s"), "--metadata", Path.Combine(_dir, "metadata_nonexisting.json"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("Unable to open or read from the mmds content file", r.Stdout);
        Assert.Contains("No such file or directory", r.Stdout);
    }

    // tests/integration_tests/functional/test_cmd_line_start.py, test_start_with_invalid_metadata
    // (tests/data/metadata_invalid.json: an object that never closes).
    [Fact]
    public void Invalid_metadata_file_says_so()
    {
        var p = Path.Combine(_dir, "metadata_invalid.json");
        File.WriteAllText(p, "{\n    \"latest\": {\n        \"meta-data\": \"Lorem ipsum\",\n        \"user-data\": \"userdata 1 2 3 4\"\n");
        var r = Repo.RunFlint(T, "--api-sock", Path.Combine(_dir, "s"), "--metadata", p);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("MMDS error: metadata provided not valid json", r.Stdout);
        Assert.DoesNotContain("Exception", r.All);
    }

    private static (int Status, string Body) Http(string sock, string method, string path)
    {
        using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        s.Connect(new UnixDomainSocketEndPoint(sock));
        s.ReceiveTimeout = 10_000;
        s.Send(Encoding.ASCII.GetBytes($"{method} {path} HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
        var buf = new byte[16384];
        int n = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(10))
        {
            int got = s.Receive(buf, n, buf.Length - n, SocketFlags.None);
            if (got == 0) break;
            n += got;
            var t = Encoding.ASCII.GetString(buf, 0, n);
            int he = t.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (he < 0) continue;
            var m = Regex.Match(t, "Content-Length: (\\d+)");
            int len = m.Success ? int.Parse(m.Groups[1].Value) : 0;
            if (n >= he + 4 + len) return (int.Parse(t.Substring(9, 3)), t.Substring(he + 4, len));
        }
        throw new TimeoutException("no API answer");
    }

    // tests/integration_tests/functional/test_cmd_line_start.py, test_start_with_metadata (the log line, the MMDS
    // contents, "Not started"); tests/integration_tests/functional/test_api.py, test_api_version (firecracker_version
    // is semver and equals the binary's --version); swagger InstanceInfo (app_name, id, state, vmm_version); and
    // tests/integration_tests/functional/test_logging.py, test_log_config ("Running Firecracker" on the first line).
    [Fact]
    public void Started_with_metadata_serves_it_and_reports_firecrackers_identity()
    {
        var sock = Path.Combine(_dir, "api.sock");
        var log = Path.Combine(_dir, "flint.log");
        File.WriteAllText(log, "");
        var metadata = CopyMetadata();
        using var p = Repo.StartWithApi(sock, "--id", "parity-1", "--metadata", metadata, "--log-path", log);
        try
        {
            if (p.HasExited) Assert.Fail("flint exited: " + Repo.Output(p));
            var (st, body) = Http(sock, "GET", "/mmds");
            Assert.Equal(200, st);
            Assert.True(JsonElement.DeepEquals(Json(body), Json(File.ReadAllText(metadata))), body);

            (st, body) = Http(sock, "GET", "/");
            Assert.Equal(200, st);
            using (var info = JsonDocument.Parse(body))
            {
                Assert.Equal("Firecracker", info.RootElement.GetProperty("app_name").GetString());
                Assert.Equal("parity-1", info.RootElement.GetProperty("id").GetString());
                Assert.Equal("Not started", info.RootElement.GetProperty("state").GetString());
                Assert.Equal(FirecrackerVersion, info.RootElement.GetProperty("vmm_version").GetString());
            }

            (st, body) = Http(sock, "GET", "/version");
            Assert.Equal(200, st);
            using (var v = JsonDocument.Parse(body))
                Assert.Equal(FirecrackerVersion, v.RootElement.GetProperty("firecracker_version").GetString());

            var lines = File.ReadAllLines(log);
            Assert.Contains($"Running Firecracker v{FirecrackerVersion}", lines[0]);
            Assert.Contains(lines, l => l.Contains("Successfully added metadata to mmds from file"));
        }
        finally
        {
            if (!p.HasExited) p.Kill();
            p.WaitForExit();
        }
    }

    private static JsonElement Json(string json)
    {
        using var d = JsonDocument.Parse(json);
        return d.RootElement.Clone();
    }

    // tests/integration_tests/functional/test_api_server.py, test_api_socket_in_use: a socket someone else has bound.
    [Fact]
    public void Api_socket_in_use_is_refused_with_firecrackers_message()
    {
        var sock = Path.Combine(_dir, "firecracker.socket");
        using var holder = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        holder.Bind(new UnixDomainSocketEndPoint(sock));
        var r = Repo.RunFlint(T, "--api-sock", sock, "--level", "warn");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"Failed to open the API socket at: {sock}. Check that it is not already used.", r.Stdout);
    }

    // tests/integration_tests/functional/test_cmd_line_parameters.py, test_cli_no_params: flint with no configuration
    // keeps running (API server up, nothing started). Run with only --api-sock: the default /run/firecracker.socket
    // would be shared with whatever else runs on this machine.
    [Fact]
    public void No_configuration_keeps_running()
    {
        var sock = Path.Combine(_dir, "api.sock");
        using var p = Repo.StartWithApi(sock);
        try
        {
            if (p.WaitForExit(3000)) Assert.Fail("flint exited: " + Repo.Output(p));
        }
        finally
        {
            if (!p.HasExited) p.Kill();
            p.WaitForExit();
        }
    }
}
