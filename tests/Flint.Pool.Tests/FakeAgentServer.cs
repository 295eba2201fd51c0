using System.Net.Sockets;
using System.Text;

namespace Flint.Pool.Tests;

/// <summary>
/// A real Unix-socket server playing Flint's vsock socket and the in-guest agent behind it, with the test guest's
/// handlers (upper, hang, garbage, fail) and the ways a hostile guest can break the protocol.
/// </summary>
public sealed class FakeAgentServer : IDisposable
{
    public enum Mode { Upper, Hang, Garbage, Fail, NoListener, WrongId, HugeLength, EndlessLine, CloseMidResult, SplitWrites, NegativeStatus, TooLarge }

    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    public string Path { get; }
    public Mode Handler { get; set; }
    public int Connections;

    public FakeAgentServer(Mode mode)
    {
        Handler = mode;
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"fa-{Environment.ProcessId}-{Guid.NewGuid():N}"[..24] + ".sock");
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(Path));
        _listener.Listen(16);
        _ = Task.Run(AcceptLoop);
    }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket s;
            try { s = await _listener.AcceptAsync(_stop.Token); }
            catch (Exception) { return; }
            Interlocked.Increment(ref Connections);
            _ = Task.Run(() => Serve(s));
        }
    }

    private async Task Serve(Socket s)
    {
        using var _ = s;
        var stream = new NetworkStream(s);
        try
        {
            var line = await ReadLine(stream);
            if (line == null || !line.StartsWith("CONNECT ", StringComparison.Ordinal)) return;
            if (Handler == Mode.NoListener) return; // the guest reset it: Flint closes without OK
            await Write(stream, "OK 1073741824\n");
            while (!_stop.IsCancellationRequested)
            {
                line = await ReadLine(stream);
                if (line == null) return;
                if (line == "PING") { await Write(stream, "PONG\n"); continue; }
                var parts = line.Split(' ');
                if (parts.Length != 3 || parts[0] != "INVOKE") { await Write(stream, "ERROR bad command\n"); return; }
                if (Handler == Mode.TooLarge && int.Parse(parts[2]) > 16) { await Write(stream, "ERROR payload too large\n"); return; }
                var payload = new byte[int.Parse(parts[2])];
                await stream.ReadExactlyAsync(payload);
                string id = parts[1];
                switch (Handler)
                {
                    case Mode.Hang: await Task.Delay(Timeout.Infinite, _stop.Token); return;
                    case Mode.Garbage: await Write(stream, "HELLO THERE\n"); continue;
                    case Mode.Fail: await Reply(stream, id, 1, Encoding.ASCII.GetBytes("handler failed")); continue;
                    case Mode.WrongId: await Reply(stream, id + "x", 0, payload); continue;
                    case Mode.HugeLength: await Write(stream, $"RESULT {id} 0 4294967295\n"); continue;
                    case Mode.EndlessLine: while (true) await Write(stream, "RESULTRESULTRESULT");
                    case Mode.CloseMidResult: await Write(stream, $"RESULT {id} 0 100\nabc"); return;
                    case Mode.NegativeStatus: await Reply(stream, id, -7, payload); continue;
                    case Mode.SplitWrites:
                        var up = Upper(payload);
                        foreach (var piece in new[] { "RES", $"ULT {id} 0 ", $"{up.Length}\n" }) { await Write(stream, piece); await Task.Delay(20); }
                        for (int i = 0; i < up.Length; i++) { await stream.WriteAsync(up.AsMemory(i, 1)); await Task.Delay(1); }
                        continue;
                    default: await Reply(stream, id, 0, Upper(payload)); continue;
                }
            }
        }
        catch (Exception) { /* the client went away */ }
    }

    private static byte[] Upper(byte[] p) => Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(p).ToUpperInvariant());

    private static async Task Reply(NetworkStream s, string id, int status, byte[] body)
    {
        await Write(s, $"RESULT {id} {status} {body.Length}\n");
        await s.WriteAsync(body);
    }

    private static Task Write(NetworkStream s, string text) => s.WriteAsync(Encoding.ASCII.GetBytes(text)).AsTask();

    private static async Task<string?> ReadLine(NetworkStream s)
    {
        var sb = new StringBuilder();
        var one = new byte[1];
        while (true)
        {
            if (await s.ReadAsync(one) == 0) return null;
            if (one[0] == '\n') return sb.ToString();
            sb.Append((char)one[0]);
            if (sb.Length > 1000) return null;
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        try { File.Delete(Path); } catch (IOException) { }
    }
}
