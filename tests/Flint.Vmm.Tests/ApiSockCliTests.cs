using System.Diagnostics;

namespace Flint.Vmm.Tests;

/// <summary>
/// `--api-sock` mistakes against the published `flint`: each exits 1 (Firecracker's generic error for an API server
/// that cannot bind) with a message that says what is wrong, deletes nothing, and leaves no socket behind. Before,
/// an existing regular file was deleted, an empty or over-long path aborted (exit 134) leaving a temporary socket,
/// and a missing directory read "Cannot assign requested address".
/// </summary>
public class ApiSockCliTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>Runs flint in <see cref="_dir"/> (so a relative temporary socket would show up there).</summary>
    private Repo.Result Run(string apiSock)
    {
        Assert.True(File.Exists(Repo.Flint), $"{Repo.Flint} is missing: run scripts/setup.sh");
        var psi = new ProcessStartInfo(Repo.Flint, ["--api-sock", apiSock, "--id", "sockcheck"])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = _dir,
        };
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var so = p.StandardOutput.ReadToEndAsync();
        var se = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(30_000))
        {
            p.Kill(true);
            Assert.Fail($"flint --api-sock '{apiSock}' did not exit");
        }
        return new Repo.Result(p.ExitCode, so.Result, se.Result, sw.Elapsed);
    }

    private void AssertNothingLeft(params string[] expected) =>
        Assert.Equal(expected.Order(), Directory.GetFileSystemEntries(_dir).Select(Path.GetFileName).Order());

    [Fact]
    public void An_existing_regular_file_is_refused_and_kept()
    {
        string path = Path.Combine(_dir, "notes.txt");
        File.WriteAllText(path, "precious");
        var r = Run(path);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"Failed to open the API socket at: {path}. Check that it is not already used.", r.Stdout);
        Assert.Contains($"Failed to open the API socket at: {path}. Check that it is not already used.", r.Stderr);
        Assert.Equal("precious", File.ReadAllText(path));
        AssertNothingLeft("notes.txt");
    }

    [Fact]
    public void An_empty_path_exits_1_and_leaves_no_temporary_socket()
    {
        var r = Run("");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("Failed to bind and run the HTTP server: IO error: the API socket path is empty", r.All);
        Assert.DoesNotContain("Unhandled", r.All);
        AssertNothingLeft();
    }

    [Fact]
    public void An_over_long_path_exits_1()
    {
        string path = Path.Combine(_dir, new string('s', 120));
        var r = Run(path);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("Failed to bind and run the HTTP server: IO error: path must be shorter than SUN_LEN", r.All);
        Assert.DoesNotContain("Unhandled", r.All);
        AssertNothingLeft();
    }

    [Fact]
    public void A_path_too_long_for_the_temporary_name_but_not_for_sun_path_still_works()
    {
        // 100 bytes: the path fits sun_path, "<path>.<pid>.tmp" does not; flint binds the path itself.
        string path = Path.Combine(_dir, new string('s', 100 - _dir.Length - 1));
        using var p = Repo.StartWithApi(path);
        try
        {
            Assert.True(File.Exists(path), "flint did not create its socket");
        }
        finally
        {
            p.Kill();
            p.WaitForExit();
        }
    }

    [Fact]
    public void A_path_in_a_missing_directory_says_no_such_directory()
    {
        string path = Path.Combine(_dir, "no", "such", "dir", "api.sock");
        var r = Run(path);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("No such file or directory", r.All);
        Assert.Contains(Path.Combine(_dir, "no", "such", "dir"), r.All);
        Assert.DoesNotContain("Cannot assign requested address", r.All);
        AssertNothingLeft();
    }

    [Fact]
    public void A_live_api_socket_is_refused_and_keeps_serving()
    {
        string path = Path.Combine(_dir, "api.sock");
        using var first = Repo.StartWithApi(path);
        try
        {
            var r = Run(path);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains($"Failed to open the API socket at: {path}. Check that it is not already used.", r.All);
            Assert.False(first.HasExited);
            Assert.True(File.Exists(path));
        }
        finally
        {
            first.Kill();
            first.WaitForExit();
        }
    }
}
