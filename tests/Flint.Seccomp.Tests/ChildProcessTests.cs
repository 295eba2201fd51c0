using System.Diagnostics;

namespace Flint.Seccomp.Tests;

/// <summary>Real filters, installed in a child process (the test helper), never in the test host.</summary>
public class ChildProcessTests
{
    private static (int Code, string Out, string Err) RunHelper(int timeoutMs, params string[] args)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "Flint.Seccomp.TestHelper.dll");
        var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutMs))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"helper {string.Join(' ', args)} did not finish");
        }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    [Theory]
    [InlineData("vcpu", 110)] // getppid
    [InlineData("vcpu", 41)]  // socket
    [InlineData("api", 59)]   // execve (with null args: never reached)
    [InlineData("vmm", 57)]   // fork
    public void Forbidden_syscall_exits_148_with_the_Firecracker_message(string filter, int nr)
    {
        var (code, stdout, stderr) = RunHelper(60_000, "trap", filter, nr.ToString());
        Assert.True(code == 148, $"exit {code}\nstdout: {stdout}\nstderr: {stderr}");
        Assert.Contains($"Shutting down VM after intercepting a bad syscall ({nr})\n", stderr);
        Assert.DoesNotContain("survived", stdout);
    }

    /// <summary>
    /// With --log-path set nothing reaches stdout before the vCPU threads start, so the guest's first console byte was
    /// the process's first use of .NET's console stream, which initialises the terminal (tcgetattr: ioctl TCGETS) on
    /// the vCPU thread: the vcpu filter killed flint with 148 ("bad syscall (16)"), first seen in a nested run.
    /// </summary>
    [Fact]
    public void Serial_console_write_under_the_vCPU_filter_with_nothing_written_before()
    {
        var (code, stdout, stderr) = RunHelper(60_000, "vcpu-serial");
        Assert.True(code == 0, $"exit {code}\nstdout: {stdout}\nstderr: {stderr}");
        Assert.Equal("serial ok\n", stdout);
    }

    /// <summary>
    /// The same trap through the logger: with --level Error (or Warning) and no --log-path nothing is written to stdout
    /// at start, so a device's error line logged on a vCPU thread (guest-triggered, e.g. a bad vsock activation) was the
    /// first use of .NET's Console.Out: terminal initialisation, ioctl TCGETS, exit 148.
    /// </summary>
    [Fact]
    public void Error_logged_on_a_vCPU_thread_with_nothing_written_before()
    {
        var (code, stdout, stderr) = RunHelper(60_000, "vcpu-log");
        Assert.True(code == 0, $"exit {code}\nstdout: {stdout}\nstderr: {stderr}");
        Assert.Contains("vcpu log ok", stdout);
        Assert.DoesNotContain("not written", stdout);
    }

    [Fact]
    public void VMM_filter_allows_the_post_boot_device_calls_of_the_API()
    {
        string dir = Directory.CreateTempSubdirectory("flint-seccomp-").FullName;
        try
        {
            var (code, stdout, stderr) = RunHelper(60_000, "postboot", dir);
            Assert.True(code == 0, $"exit {code}\nstdout: {stdout}\nstderr: {stderr}");
            Assert.Contains("postboot ok", stdout);
            Assert.False(File.Exists(Path.Combine(dir, "api.sock")), "the exit path removes the socket file under the filter");
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>
    /// Every post-boot API path through the real controller and devices under the real vmm filter. A relative
    /// path_on_host (normal in a jail) resolves against the working directory: getcwd, which the filter refused, so
    /// PATCH /drives after InstanceStart killed the VM with 148.
    /// </summary>
    [Fact]
    public void VMM_filter_allows_every_post_boot_API_path()
    {
        string dir = Directory.CreateTempSubdirectory("flint-seccomp-").FullName;
        try
        {
            var (code, stdout, stderr) = RunHelper(60_000, "postboot-api", dir);
            Assert.True(code == 0, $"exit {code}\nstdout: {stdout}\nstderr: {stderr}");
            Assert.Contains("postboot-api ok", stdout);
            Assert.Equal(8192, new FileInfo(Path.Combine(dir, "b.img")).Length);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Relative_drive_patch_under_the_VMM_filter_without_getcwd_exits_148()
    {
        string dir = Directory.CreateTempSubdirectory("flint-seccomp-").FullName;
        try
        {
            var (code, _, stderr) = RunHelper(60_000, "postboot-api", dir, "old-vmm-filter");
            Assert.Equal(148, code);
            Assert.Contains("Shutting down VM after intercepting a bad syscall (79)", stderr); // 79 = getcwd
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Fatal_SIGSEGV_handler_leaves_null_references_to_the_runtime_and_ends_wild_faults_with_150()
    {
        var (code, stdout, stderr) = RunHelper(60_000, "segv");
        Assert.True(code == 150, $"exit {code}\nstdout: {stdout}\nstderr: {stderr}");
        Assert.Contains("caught 3", stdout);
        Assert.Contains("Shutting down VM after intercepting signal 11, code 1.\n", stderr); // SEGV_MAPERR
        Assert.DoesNotContain("survived", stdout);
    }

    [Theory]
    [InlineData("vcpu", 39)]  // getpid
    [InlineData("api", 186)]  // gettid
    [InlineData("vmm", 24)]   // sched_yield
    public void Allowed_syscall_keeps_running(string filter, int nr)
    {
        var (code, stdout, stderr) = RunHelper(60_000, "trap", filter, nr.ToString());
        Assert.True(code == 0, $"exit {code}\nstdout: {stdout}\nstderr: {stderr}");
        Assert.Contains($"survived {nr}", stdout);
    }

    [Fact]
    public void Custom_JSON_filter_is_enforced()
    {
        string dir = Directory.CreateTempSubdirectory("flint-seccomp-").FullName;
        try
        {
            // The default vcpu filter plus getppid, as a user's --seccomp-filter file would extend it.
            string json = DefaultFilters.Json.Replace("\"filter\": [", "\"filter\": [\n      {\"syscall\": \"getppid\"},");
            string path = Path.Combine(dir, "custom.json");
            File.WriteAllText(path, json);
            var ok = RunHelper(60_000, "trap", path, "110");
            Assert.True(ok.Code == 0, ok.Err);
            var bad = RunHelper(60_000, "trap", path, "112"); // setsid
            Assert.Equal(148, bad.Code);
            Assert.Contains("Shutting down VM after intercepting a bad syscall (112)", bad.Err);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Default_filters_survive_each_kinds_normal_work_under_GC_pressure()
    {
        // vcpu: allocations forcing GCs, waits, eventfd writes, logging, kick signals; api: Unix socket accept/recv/send
        // over epoll; vmm (the main thread): epoll/eventfd/timerfd, pread/pwrite/fdatasync, metrics and stdout writes.
        var (code, stdout, stderr) = RunHelper(120_000, "work", "4", "default");
        Assert.DoesNotContain("Shutting down VM", stderr);
        Assert.True(code == 0, $"exit {code}\nstdout tail: {stdout[Math.Max(0, stdout.Length - 500)..]}\nstderr: {stderr}");
        Assert.Contains("done", stdout);
        Assert.Contains("ROLE vcpu", stdout);
    }
}
