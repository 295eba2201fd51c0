using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Flint.Vmm.Tests;

/// <summary>PUT/PATCH /pmem/{id} and GET /vm/config through the real flint process's API socket (Firecracker's
/// test_pmem.py configuration checks that need no guest).</summary>
public sealed class PmemApiProcessTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();
    private Process? _proc;

    public void Dispose()
    {
        if (_proc is { HasExited: false }) { _proc.Kill(true); _proc.WaitForExit(); }
        _proc?.Dispose();
        Directory.Delete(_dir, true);
    }

    private string Sock => Path.Combine(_dir, "api.sock");

    private Socket Start()
    {
        var psi = new ProcessStartInfo(Repo.Flint) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in new[] { "--api-sock", Sock }) psi.ArgumentList.Add(a);
        _proc = Process.Start(psi)!;
        _proc.StandardInput.Close();
        _proc.BeginOutputReadLine();
        _proc.BeginErrorReadLine();
        var sw = Stopwatch.StartNew();
        while (!File.Exists(Sock) && sw.Elapsed < TimeSpan.FromSeconds(10)) Thread.Sleep(5);
        Assert.True(File.Exists(Sock), "API socket did not appear");
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        s.Connect(new UnixDomainSocketEndPoint(Sock));
        s.ReceiveTimeout = 10_000;
        return s;
    }

    private static (int Status, string Body) Request(Socket s, string method, string path, string? body = null)
    {
        var b = body ?? "";
        var req = $"{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n" +
                  (body != null ? $"Content-Type: application/json\r\nContent-Length: {Encoding.UTF8.GetByteCount(b)}\r\n" : "") + "\r\n" + b;
        s.Send(Encoding.UTF8.GetBytes(req));
        var buf = new byte[65536];
        int n = 0;
        while (true)
        {
            int got = s.Receive(buf, n, buf.Length - n, SocketFlags.None);
            Assert.True(got > 0, "connection closed");
            n += got;
            var text = Encoding.UTF8.GetString(buf, 0, n);
            int he = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (he < 0) continue;
            var m = System.Text.RegularExpressions.Regex.Match(text, "Content-Length: (\\d+)", System.Text.RegularExpressions.RegexOptions.IgnoreCase);
            int len = m.Success ? int.Parse(m.Groups[1].Value) : 0;
            if (n < he + 4 + len) continue;
            return (int.Parse(text.Substring(9, 3)), text.Substring(he + 4, len));
        }
    }

    private static string FaultOf((int Status, string Body) r)
    {
        Assert.Equal(400, r.Status);
        return JsonDocument.Parse(r.Body).RootElement.GetProperty("fault_message").GetString()!;
    }

    [Fact]
    public void Pmem_is_configured_reported_and_refused_in_firecrackers_words()
    {
        string file = Path.Combine(_dir, "pmem.img");
        File.WriteAllBytes(file, new byte[4096]);
        using var s = Start();
        Assert.Equal(204, Request(s, "PUT", "/pmem/pmem0",
            $"{{\"id\": \"pmem0\", \"path_on_host\": \"{file}\", \"root_device\": true, \"read_only\": true}}").Status);
        Assert.Equal(204, Request(s, "PUT", "/pmem/data", $"{{\"id\": \"data\", \"path_on_host\": \"{file}\"}}").Status);
        var (st, body) = Request(s, "GET", "/vm/config");
        Assert.Equal(200, st);
        var pmem = JsonDocument.Parse(body).RootElement.GetProperty("pmem");
        Assert.Equal($"{{\"id\":\"pmem0\",\"path_on_host\":\"{file}\",\"root_device\":true,\"read_only\":true,\"rate_limiter\":null}}", pmem[0].GetRawText());
        Assert.Equal("data", pmem[1].GetProperty("id").GetString());

        Assert.Equal("Pmem config error: A root pmem device already exist",
            FaultOf(Request(s, "PUT", "/pmem/other", $"{{\"id\": \"other\", \"path_on_host\": \"{file}\", \"root_device\": true}}")));
        Assert.Equal("Drive config error: Attempt to add block as a root device while the root device defined as a pmem device",
            FaultOf(Request(s, "PUT", "/drives/rootfs", $"{{\"drive_id\": \"rootfs\", \"path_on_host\": \"{file}\", \"is_root_device\": true}}")));
        Assert.Equal("The id from the path does not match the id from the body!",
            FaultOf(Request(s, "PUT", "/pmem/x", $"{{\"id\": \"y\", \"path_on_host\": \"{file}\"}}")));
        Assert.Equal("The requested operation is not supported before starting the microVM.",
            FaultOf(Request(s, "PATCH", "/pmem/pmem0", "{\"id\": \"pmem0\", \"rate_limiter\": {\"ops\": {\"size\": 1, \"refill_time\": 100}}}")));
        // The process is still serving.
        Assert.Equal(200, Request(s, "GET", "/").Status);
    }
}
