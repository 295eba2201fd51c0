using System.Net.Sockets;

namespace Flint.Api.Tests;

/// <summary>
/// Operator mistakes with the API socket path: each is refused with Firecracker's wording, deletes nothing that
/// was there, and leaves no socket (temporary or not) behind.
/// </summary>
public class SocketPathTests
{
    private static string InUse(string path) => $"Failed to open the API socket at: {path}. Check that it is not already used.";

    private static ApiSocketException StartFails(Env env, string path)
    {
        using var s = new ApiServer(path, 51200, env.Controller);
        return Assert.Throws<ApiSocketException>(s.Start);
    }

    [Fact]
    public void An_existing_regular_file_is_refused_and_kept()
    {
        using var env = new Env();
        File.WriteAllText(env.Sock, "precious");
        var e = StartFails(env, env.Sock);
        Assert.Equal(InUse(env.Sock), e.Message);
        Assert.Equal("precious", File.ReadAllText(env.Sock)); // before: deleted and replaced by the socket
        Assert.DoesNotContain(Directory.GetFiles(env.Dir), f => f.EndsWith(".tmp"));
    }

    [Fact]
    public void A_live_socket_is_refused_and_keeps_serving()
    {
        using var env = new Env(server: true);
        var e = StartFails(env, env.Sock);
        Assert.Equal(InUse(env.Sock), e.Message);
        using var c = env.Connect();
        Assert.Equal(200, c.Call("GET", "/").Status);
    }

    /// <summary>Firecracker's test_api_socket_in_use: a socket bound at the path (listening or not) is "in use".</summary>
    [Fact]
    public void A_bound_but_not_listening_socket_is_refused()
    {
        using var env = new Env();
        using var squatter = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        squatter.Bind(new UnixDomainSocketEndPoint(env.Sock));
        Assert.Equal(InUse(env.Sock), StartFails(env, env.Sock).Message);
        Assert.True(File.Exists(env.Sock));
    }

    [Fact]
    public void A_dangling_symlink_is_refused_and_kept()
    {
        using var env = new Env();
        File.CreateSymbolicLink(env.Sock, Path.Combine(env.Dir, "nowhere"));
        Assert.Equal(InUse(env.Sock), StartFails(env, env.Sock).Message);
        Assert.NotNull(new FileInfo(env.Sock).LinkTarget);
    }

    [Fact]
    public void An_empty_path_is_refused_and_leaves_no_temporary_socket()
    {
        using var env = new Env();
        var before = Directory.GetFiles(Environment.CurrentDirectory, "*.tmp");
        var e = StartFails(env, "");
        Assert.Equal("Failed to bind and run the HTTP server: IO error: the API socket path is empty", e.Message);
        Assert.Equal(before, Directory.GetFiles(Environment.CurrentDirectory, "*.tmp"));
    }

    [Theory]
    [InlineData(108)]
    [InlineData(200)]
    public void An_over_long_path_is_refused(int bytes)
    {
        using var env = new Env();
        string path = env.Dir + "/" + new string('s', bytes - env.Dir.Length - 1);
        Assert.Equal(bytes, path.Length);
        var e = StartFails(env, path);
        Assert.StartsWith("Failed to bind and run the HTTP server: IO error: path must be shorter than SUN_LEN", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(env.Dir, "sss*"));
    }

    [Fact]
    public void A_107_byte_path_still_works()
    {
        using var env = new Env();
        string path = env.Dir + "/" + new string('s', 107 - env.Dir.Length - 1);
        using (var s = new ApiServer(path, 51200, env.Controller))
        {
            s.Start();
            using var c = new Client(path);
            Assert.Equal(200, c.Call("GET", "/").Status);
        }
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void A_path_in_a_missing_directory_says_so()
    {
        using var env = new Env();
        string path = Path.Combine(env.Dir, "missing", "api.sock");
        var e = StartFails(env, path);
        Assert.Equal($"Failed to bind and run the HTTP server: IO error: No such file or directory (os error 2): the directory {Path.Combine(env.Dir, "missing")} does not exist", e.Message);
        Assert.DoesNotContain("Cannot assign", e.Message);
        Assert.False(Directory.Exists(Path.Combine(env.Dir, "missing")));
    }

    [Fact]
    public void A_file_at_the_temporary_name_is_left_alone()
    {
        // The socket is bound under "<path>.<pid>.tmp" and then linked into place; whatever holds that name is not ours.
        using var env = new Env();
        string temp = $"{env.Sock}.{Environment.ProcessId}.tmp";
        File.WriteAllText(temp, "someone else's");
        using (var s = new ApiServer(env.Sock, 51200, env.Controller))
        {
            s.Start();
            using var c = env.Connect();
            Assert.Equal(200, c.Call("GET", "/").Status);
        }
        Assert.Equal("someone else's", File.ReadAllText(temp));
        Assert.False(File.Exists(env.Sock));
    }
}
