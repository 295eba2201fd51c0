using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Flint.Api;
using Flint.Vmm.Config;
using Flint.Vmm.Logging;
using Flint.Vmm.Rpc;

namespace Flint.Api.Tests;

public sealed class FakeVm : IRunningVm
{
    public bool IsPaused { get; private set; }
    public int CtrlAltDels;
    public List<(string, string)> Patches = [];
    public void Pause() => IsPaused = true;
    public void Resume() => IsPaused = false;
    public void SendCtrlAltDel() => CtrlAltDels++;
    public void PatchDrive(string driveId, string pathOnHost) => Patches.Add((driveId, pathOnHost));
    public List<string> LimiterPatches = [];
    public List<string> VhostUserRefreshes = [];
    public void RefreshVhostUserDrive(string driveId) => VhostUserRefreshes.Add(driveId);
    public void PatchDriveRateLimiter(string driveId, System.Text.Json.JsonElement rateLimiter) => LimiterPatches.Add(driveId);
    public void PatchNetwork(string ifaceId, System.Text.Json.JsonElement? rx, System.Text.Json.JsonElement? tx) => LimiterPatches.Add(ifaceId);
    public uint BalloonMib;
    public string GetBalloonJson() => $"{{\"amount_mib\":{BalloonMib},\"deflate_on_oom\":false,\"stats_polling_interval_s\":0}}";
    public string GetBalloonStatsJson() => throw new InvalidOperationException("Statistics for the balloon device are not enabled.");
    public void PatchBalloon(uint amountMib) => BalloonMib = amountMib;
    public void PatchBalloonStatsInterval(uint intervalS) => throw new InvalidOperationException("Statistics for the balloon device are not enabled.");
}

/// <summary>A temp dir with a kernel and disk image, a controller with a fake VM, and optionally a live server.</summary>
public sealed class Env : IDisposable
{
    public readonly string Dir;
    public readonly string Kernel, Rootfs, Disk2, Sock, VsockPath;
    /// <summary>A tap name of this Env's own: PUT /network-interfaces opens the tap (as Firecracker), so names must not collide.</summary>
    public readonly string TapName = "flt" + Guid.NewGuid().ToString("N")[..10];
    public readonly string TapName2 = "flu" + Guid.NewGuid().ToString("N")[..10];
    public FakeVm? Vm;
    public VmConfig? StartedWith;
    public readonly VmmController Controller;
    public ApiServer? Server;
    public Func<VmConfig, IRunningVm>? StartOverride;

    static Env() { Logger.Level = LogLevel.Off; }

    public Env(bool server = false, int maxPayload = 51200, IApiHandler? handler = null)
    {
        Dir = Path.Combine(Path.GetTempPath(), "flint-api-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Dir);
        Kernel = Path.Combine(Dir, "vmlinux"); File.WriteAllBytes(Kernel, new byte[64]);
        Rootfs = Path.Combine(Dir, "rootfs.ext4"); File.WriteAllBytes(Rootfs, new byte[4096]);
        Disk2 = Path.Combine(Dir, "data.img"); File.WriteAllBytes(Disk2, new byte[4096]);
        Sock = Path.Combine(Dir, "api.sock");
        VsockPath = Path.Combine(Dir, "v.sock");
        Controller = new VmmController(cfg =>
        {
            if (StartOverride != null) return StartOverride(cfg);
            StartedWith = cfg;
            return Vm = new FakeVm();
        }, "test-vm", "1.2.3")
        {
            ConfigureLogger = _ => { },
        };
        if (server)
        {
            Server = new ApiServer(Sock, maxPayload, handler ?? Controller);
            Server.Start();
        }
    }

    public ApiResponse Call(string method, string path, string? body = null) => Controller.Handle(method, path, body);

    public string ConfigJson => Controller.Handle(new GetVmConfig()).Body!;

    public Client Connect() => new(Sock);

    public void Dispose()
    {
        Server?.Dispose();
        Controller.Preopened.Dispose(); // taps and the vsock socket opened at PUT time
        try { Directory.Delete(Dir, true); } catch (IOException) { }
    }
}

public sealed record HttpResp(int Status, string Reason, Dictionary<string, string> Headers, string? Body)
{
    private const string MicroHttpError = "{ \"error\": \"", MicroHttpTail = "\nAll previous unanswered requests will be dropped.\" }";

    /// <summary>The fault_message of an API error, or the message of micro-http's HTTP-layer error.</summary>
    public string? Fault => Body == null ? null
        : Body.StartsWith(MicroHttpError, StringComparison.Ordinal) && Body.EndsWith(MicroHttpTail, StringComparison.Ordinal)
            ? Body[MicroHttpError.Length..^MicroHttpTail.Length]
            : JsonDocument.Parse(Body).RootElement.GetProperty("fault_message").GetString();
}

/// <summary>A raw HTTP client over the Unix socket.</summary>
public sealed class Client : IDisposable
{
    public readonly Socket S;
    private readonly List<byte> _buf = [];

    public Client(string path)
    {
        S = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        S.Connect(new UnixDomainSocketEndPoint(path));
        S.ReceiveTimeout = 10000;
    }

    public void Send(string raw) => S.Send(Encoding.UTF8.GetBytes(raw));
    public void Send(byte[] raw) => S.Send(raw);

    public static string Request(string method, string path, string? body = null, string extraHeaders = "")
    {
        var sb = new StringBuilder($"{method} {path} HTTP/1.1\r\n{extraHeaders}");
        if (body != null) sb.Append($"Content-Type: application/json\r\nContent-Length: {Encoding.UTF8.GetByteCount(body)}\r\n");
        sb.Append("\r\n");
        if (body != null) sb.Append(body);
        return sb.ToString();
    }

    public HttpResp Call(string method, string path, string? body = null)
    {
        Send(Request(method, path, body));
        return Read();
    }

    /// <summary>Reads exactly one response (headers + Content-Length body).</summary>
    public HttpResp Read(int timeoutMs = 10000)
    {
        S.ReceiveTimeout = timeoutMs;
        while (true)
        {
            var r = TryTake();
            if (r != null) return r;
            var tmp = new byte[65536];
            int n = S.Receive(tmp);
            if (n == 0) throw new IOException("connection closed by the server");
            _buf.AddRange(tmp.AsSpan(0, n).ToArray());
        }
    }

    /// <summary>True when the server closed the connection (after any buffered responses).</summary>
    public bool IsClosedByServer(int timeoutMs = 5000)
    {
        S.ReceiveTimeout = timeoutMs;
        try
        {
            var tmp = new byte[4096];
            return S.Receive(tmp) == 0;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset) { return true; }
    }

    private HttpResp? TryTake()
    {
        var arr = _buf.ToArray();
        var text = Encoding.UTF8.GetString(arr);
        int headEnd = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        if (headEnd < 0) return null;
        var lines = text[..headEnd].Split("\r\n");
        var parts = lines[0].Split(' ', 3);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var l in lines.Skip(1)) { int c = l.IndexOf(':'); headers[l[..c]] = l[(c + 1)..].Trim(); }
        int headBytes = Encoding.UTF8.GetByteCount(text[..(headEnd + 4)]);
        int len = headers.TryGetValue("Content-Length", out var cl) ? int.Parse(cl) : 0;
        if (arr.Length < headBytes + len) return null;
        string? body = headers.ContainsKey("Content-Length") ? Encoding.UTF8.GetString(arr, headBytes, len) : null;
        _buf.RemoveRange(0, headBytes + len);
        return new HttpResp(int.Parse(parts[1]), parts[2], headers, body);
    }

    public void Dispose() => S.Dispose();
}
