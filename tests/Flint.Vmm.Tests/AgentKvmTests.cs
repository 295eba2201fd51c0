using System.Diagnostics;
using System.Text;
using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// The test guest's agent mode (tg.agent=) under flint on KVM, reached the way flint-pool reaches an agent: the VM's
/// vsock uds_path, "CONNECT 5005", then the agent protocol (docs/agent-protocol.md). It runs the guest's virtio-vsock
/// stream code (receive ring, credit updates, recycled rings, a reconnect held pending) which the host-process tests of
/// Flint.Agent.Tests cannot reach.
/// </summary>
public sealed class AgentKvmTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(120);
    private readonly string _dir = Repo.TempDir();
    private Process? _flint;
    private readonly StringBuilder _log = new();

    public void Dispose()
    {
        if (_flint != null)
        {
            try { _flint.Kill(true); } catch (InvalidOperationException) { }
            _flint.WaitForExit(10000);
            lock (_log) output.WriteLine(_log.ToString());
            _flint.Dispose();
        }
        Directory.Delete(_dir, true);
    }

    /// <summary>Boots the test guest in agent mode with <paramref name="handler"/>; returns the vsock uds_path once the
    /// guest says it listens.</summary>
    private string StartAgentVm(string handler)
    {
        var uds = Path.Combine(_dir, "v.sock");
        var cmd = TestGuestImage.Build().Tests(TestGuestImage.Serial).BootTimer(false)
            .Option(TestGuestImage.OptAgent, AgentWire.DefaultPort).Option(TestGuestImage.OptAgentHandler, handler).ToString();
        var cfg = Path.Combine(_dir, "config.json");
        File.WriteAllText(cfg, $$"""
            {"boot-source": {"kernel_image_path": "{{TestGuestImage.Path}}", "boot_args": "{{cmd}}" },
             "drives": [],
             "machine-config": {"vcpu_count": 1, "mem_size_mib": 128 },
             "vsock": {"guest_cid": 3, "uds_path": "{{uds}}"} }
            """);
        Assert.True(File.Exists(Repo.Flint), $"{Repo.Flint} is missing: run scripts/setup.sh");
        var psi = new ProcessStartInfo(Repo.Flint, ["--no-api", "--config-file", cfg])
            { RedirectStandardOutput = true, RedirectStandardError = true };
        using var listening = new ManualResetEventSlim();
        _flint = Process.Start(psi)!;
        _flint.OutputDataReceived += (_, e) =>
        {
            if (e.Data == null) return;
            lock (_log) _log.AppendLine(e.Data);
            if (e.Data.StartsWith(TestGuestImage.AgentListeningPrefix, StringComparison.Ordinal)) listening.Set();
        };
        _flint.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (_log) _log.AppendLine(e.Data); };
        _flint.BeginOutputReadLine();
        _flint.BeginErrorReadLine();
        var sw = Stopwatch.StartNew();
        while (!listening.Wait(100) && !_flint.HasExited && sw.Elapsed < Boot) { }
        Assert.True(listening.IsSet, "the guest never said 'agent listening'");
        return uds;
    }

    private static AgentWire Connect(string uds, TimeSpan? io = null) =>
        AgentWire.ConnectHybridVsock(uds, AgentWire.DefaultPort, TimeSpan.FromSeconds(30), io ?? TimeSpan.FromSeconds(20));

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void A_thousand_invocations_on_one_connection_then_reconnects()
    {
        KvmRequirement.Check();
        var uds = StartAgentVm("upper");
        var sw = Stopwatch.StartNew();
        using (var w = Connect(uds))
        {
            Assert.Equal("PONG", w.Ping());
            for (int i = 0; i < 1000; i++)
            {
                // mostly small calls, and now and then one that wraps the guest's 64 KiB receive ring and needs its
                // credit updates (a request larger than the ring cannot be sent without them)
                int len = i % 100 == 99 ? 65536 : 1 + i % 300;
                var payload = new byte[len];
                for (int j = 0; j < len; j++) payload[j] = (byte)('a' + (i + j) % 26);
                var r = w.Invoke((ulong)i + 1_000_000_000_000, payload);
                Assert.Equal((ulong)i + 1_000_000_000_000, r.Id);
                Assert.Equal(0, r.Status);
                Assert.Equal(Encoding.ASCII.GetString(payload).ToUpperInvariant(), Encoding.ASCII.GetString(r.Body));
            }
        }
        output.WriteLine($"1000 invocations in {sw.ElapsedMilliseconds} ms");
        // The pool reconnects: each new connection is accepted once the previous one is closed.
        for (int k = 0; k < 20; k++)
        {
            using var w = Connect(uds);
            Assert.Equal("PONG", w.Ping());
            Assert.Equal("AGAIN " + k, w.Invoke((ulong)k, "again " + k).Text);
        }
        // Anything else: ERROR, the connection closes, the next one is served.
        using (var w = Connect(uds))
        {
            w.SendLine("HELLO");
            Assert.Equal("ERROR unknown command", w.ReadLine());
            Assert.True(w.ReadsEof());
        }
        using (var w = Connect(uds))
        {
            w.SendLine("INVOKE 1 65537");
            Assert.Equal("ERROR payload too large", w.ReadLine());
        }
        using (var w = Connect(uds)) Assert.Equal("PONG", w.Ping());
        Assert.False(_flint!.HasExited, "flint exited");
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Hang_mode_never_answers_and_the_agent_takes_the_next_connection()
    {
        KvmRequirement.Check();
        var uds = StartAgentVm("hang");
        for (int k = 0; k < 3; k++)
        {
            using var w = Connect(uds, TimeSpan.FromSeconds(2));
            Assert.Equal("PONG", w.Ping());
            w.SendInvoke(1, "abc"u8);
            Assert.Throws<System.Net.Sockets.SocketException>(() => w.ReadLine()); // the 2 s receive timeout
        }
        Assert.False(_flint!.HasExited, "flint exited");
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Garbage_mode_answers_something_that_is_not_a_RESULT_line()
    {
        KvmRequirement.Check();
        var uds = StartAgentVm("garbage");
        using var w = Connect(uds);
        w.SendInvoke(1, "abc"u8);
        var line = w.ReadLine();
        Assert.NotNull(line);
        Assert.False(line.StartsWith("RESULT ", StringComparison.Ordinal), line);
        Assert.Equal("PONG", w.Ping());
    }
}
