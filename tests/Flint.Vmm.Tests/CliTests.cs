namespace Flint.Vmm.Tests;

/// <summary>The published `flint` binary's argument and configuration errors: exit 153 / 1 (as Firecracker's main.rs), a message, no VM.</summary>
public class CliTests : IDisposable
{
    private static readonly TimeSpan T = TimeSpan.FromSeconds(30);
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    private string WriteConfig(string kernel, string machine = "{\"vcpu_count\": 1, \"mem_size_mib\": 128}", string drives = "[]")
    {
        var p = Path.Combine(_dir, "config.json");
        File.WriteAllText(p, $"{{\"boot-source\": {{\"kernel_image_path\": \"{kernel}\"}}, \"drives\": {drives}, \"machine-config\": {machine}}}");
        return p;
    }

    [Fact]
    public void Version_prints_and_exits_0()
    {
        var r = Repo.RunFlint(T, "--version");
        Assert.Equal(0, r.ExitCode);
        Assert.StartsWith("Firecracker v", r.Stdout);
    }

    [Theory]
    [InlineData("--no-such-flag")]
    [InlineData("--no-api")]
    [InlineData("--id", "bad/id")]
    [InlineData("--config-file")]
    [InlineData("--id", "a", "--id", "b")]
    [InlineData("--http-api-max-payload-size", "lots")]
    [InlineData("positional")]
    [InlineData("--no-api=yes")]
    public void Argument_errors_exit_153(params string[] args)
    {
        var r = Repo.RunFlint(T, args);
        Assert.Equal(153, r.ExitCode);
        Assert.Contains("Arguments parsing error", r.Stdout); // the log; stderr has the Debug form
        Assert.Contains("Error: ParseArguments(", r.Stderr);
    }

    [Fact]
    public void Help_lists_the_firecracker_flags()
    {
        var r = Repo.RunFlint(T, "--help");
        Assert.Equal(0, r.ExitCode);
        foreach (var f in new[] { "--api-sock", "--config-file", "--no-api", "--boot-timer", "--seccomp-filter", "--metadata" })
            Assert.Contains(f, r.Stdout);
    }

    [Fact]
    public void Missing_kernel_exits_1_naming_it()
    {
        var r = Repo.RunFlint(T, "--no-api", "--config-file", WriteConfig("/nonexistent/vmlinux"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("Boot source error: The kernel file cannot be opened: No such file or directory (os error 2)", r.All); // Firecracker names no path
    }

    [Fact]
    public void Unreadable_config_file_exits_1()
    {
        var r = Repo.RunFlint(T, "--no-api", "--config-file", Path.Combine(_dir, "missing.json"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("missing.json", r.All);
    }

    [Fact]
    public void Kernel_that_is_neither_elf_nor_bzimage_exits_1()
    {
        var k = Path.Combine(_dir, "not-a-kernel");
        File.WriteAllText(k, new string('x', 8192));
        var r = Repo.RunFlint(T, "--no-api", "--config-file", WriteConfig(k));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("not-a-kernel", r.All);
    }

    [Theory]
    [InlineData("{\"vcpu_count\": 0, \"mem_size_mib\": 128}")]
    [InlineData("{\"vcpu_count\": 33, \"mem_size_mib\": 128}")]
    [InlineData("{\"vcpu_count\": 1, \"mem_size_mib\": 0}")]
    [InlineData("{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"unknown_field\": true}")]
    public void Bad_machine_config_exits_1(string machine)
    {
        var k = Path.Combine(_dir, "k");
        File.WriteAllBytes(k, new byte[16]);
        var r = Repo.RunFlint(T, "--no-api", "--config-file", WriteConfig(k, machine));
        Assert.Equal(1, r.ExitCode);
    }

    [Fact]
    public void Two_root_drives_exit_1()
    {
        var k = Path.Combine(_dir, "k");
        var d = Path.Combine(_dir, "d");
        File.WriteAllBytes(k, new byte[16]);
        File.WriteAllBytes(d, new byte[512]);
        string drive(string id) => $"{{\"drive_id\": \"{id}\", \"path_on_host\": \"{d}\", \"is_root_device\": true}}";
        var r = Repo.RunFlint(T, "--no-api", "--config-file", WriteConfig(k, drives: $"[{drive("a")}, {drive("b")}]"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("A root block device already exists!", r.All);
    }
}

/// <summary>Firecracker's log options on the real binary: level, origin (file:line) and the module filter.</summary>
public class LoggerOptionTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void Log_file_shows_level_and_origin_and_honours_the_module_filter()
    {
        var log = Path.Combine(_dir, "flint.log");
        var r = Repo.RunFlint(TimeSpan.FromSeconds(30), "--no-api", "--config-file", Path.Combine(_dir, "missing.json"),
            "--log-path", log, "--show-log-origin", "--level", "Debug");
        Assert.Equal(1, r.ExitCode);
        var text = File.ReadAllText(log);
        Assert.Matches(@"\[anonymous-instance:main:src/Flint/Cli\.cs:\d+\] Running Firecracker v", text);
        Assert.Matches(@"\[anonymous-instance:main:src/Flint/Cli\.cs:\d+\] Unable to open or read from the configuration file", text);

        var log2 = Path.Combine(_dir, "filtered.log");
        r = Repo.RunFlint(TimeSpan.FromSeconds(30), "--no-api", "--config-file", Path.Combine(_dir, "missing.json"),
            "--log-path", log2, "--module", "Flint.Vmm/");
        Assert.Equal(1, r.ExitCode);
        Assert.DoesNotContain("Running Firecracker", File.ReadAllText(log2)); // logged from src/Flint/, filtered out
    }
}
