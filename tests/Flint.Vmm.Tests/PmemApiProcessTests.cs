using System.Net.Sockets;
using System.Text.Json;

namespace Flint.Vmm.Tests;

/// <summary>PUT/PATCH /pmem/{id} and GET /vm/config through the real flint process's API socket (Firecracker's
/// test_pmem.py configuration checks that need no guest).</summary>
public sealed class PmemApiProcessTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();
    private FlintApiProcess? _flint;

    public void Dispose()
    {
        _flint?.Dispose();
        Directory.Delete(_dir, true);
    }

    private Socket Start()
    {
        _flint = new FlintApiProcess(_dir);
        return _flint.Connect(10_000);
    }

    private static (int Status, string Body) Request(Socket s, string method, string path, string? body = null) =>
        ApiHttp.Request(s, method, path, body);

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
