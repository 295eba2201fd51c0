using System.Diagnostics;
using System.Text;
using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// The agents under flint on KVM, reached the way flint-pool reaches one: the VM's vsock uds_path, "CONNECT 5005", then
/// the agent protocol (docs/agent-protocol.md). The test guest's agent mode (tg.agent=) runs the guest's virtio-vsock
/// stream code (receive ring, credit updates, recycled rings, a reconnect held pending) which the host-process tests of
/// Flint.Agent.Tests cannot reach; guest/agent/flint-agent runs in the real kernel's rootfs (mkrootfs.sh --agent), where
/// user space runs (not on kvm_pvm hosts: that test skips there).
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

    /// <summary>Starts flint on <paramref name="cfg"/>; returns once a stdout line contains <paramref name="ready"/>.</summary>
    private void StartVm(string cfg, string ready)
    {
        Assert.True(File.Exists(Repo.Flint), $"{Repo.Flint} is missing: run scripts/setup.sh");
        var psi = new ProcessStartInfo(Repo.Flint, ["--no-api", "--config-file", cfg])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using var seen = new ManualResetEventSlim();
        _flint = Process.Start(psi)!;
        _flint.OutputDataReceived += (_, e) =>
        {
            if (e.Data == null) return;
            lock (_log) _log.AppendLine(e.Data);
            if (e.Data.Contains(ready, StringComparison.Ordinal)) seen.Set();
        };
        _flint.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (_log) _log.AppendLine(e.Data); };
        _flint.BeginOutputReadLine();
        _flint.BeginErrorReadLine();
        var sw = Stopwatch.StartNew();
        while (!seen.Wait(100) && !_flint.HasExited && sw.Elapsed < Boot) { }
        Assert.True(seen.IsSet, $"the guest never printed '{ready}'");
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
        StartVm(cfg, TestGuestImage.AgentListeningPrefix);
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

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Flint_agent_in_the_real_kernel_rootfs_runs_its_handler()
    {
        KvmRequirement.Check();
        Skip.If(Directory.Exists("/sys/module/kvm_pvm"), "kvm_pvm host: guest user space cannot run here");
        var vmlinux = Path.Combine(Repo.GuestDir, "vmlinux");
        Assert.True(File.Exists(vmlinux), $"{vmlinux} missing: run scripts/setup.sh");
        Assert.Equal(0, Sh($"bash {Path.Combine(Repo.Root, "guest", "agent", "build.sh")} {_dir}"));
        var handler = Path.Combine(_dir, "handler");
        // first line "sleep..." outlives flint.timeout_ms, "exit..." fails with 7, anything else comes back uppercased
        File.WriteAllText(handler, """
            #!/bin/sh
            read -r first
            case "$first" in
              sleep*) sleep 30 ;;
              exit*) echo bye; exit 7 ;;
            esac
            printf '%s\n' "$first" | tr a-z A-Z

            """);
        var rootfs = Path.Combine(_dir, "fn.ext4");
        Assert.Equal(0, Sh($"bash {Path.Combine(Repo.Root, "guest", "mkrootfs.sh")} {rootfs} --agent {Path.Combine(_dir, "flint-agent")} --handler {handler}"));
        var uds = Path.Combine(_dir, "v.sock");
        var cfg = Path.Combine(_dir, "config.json");
        File.WriteAllText(cfg, $$"""
            {"boot-source": {"kernel_image_path": "{{vmlinux}}", "boot_args": "console=ttyS0 reboot=k panic=1 flint.timeout_ms=3000"},
             "drives": [{"drive_id": "rootfs", "path_on_host": "{{rootfs}}", "is_root_device": true, "is_read_only": false}],
             "machine-config": {"vcpu_count": 1, "mem_size_mib": 128},
             "vsock": {"guest_cid": 3, "uds_path": "{{uds}}"} }
            """);
        StartVm(cfg, "flint-agent: listening on vsock port 5005");
        using var w = Connect(uds);
        Assert.Equal("PONG", w.Ping());
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < 50; i++)
        {
            var r = w.Invoke((ulong)i, $"hello {i}\n");
            Assert.Equal(((ulong)i, 0, $"HELLO {i}\n"), (r.Id, r.Status, r.Text));
        }
        output.WriteLine($"50 invocations (a fork + exec each) in {sw.ElapsedMilliseconds} ms");
        var e = w.Invoke(100, "exit\n");
        Assert.Equal((7, "bye\n"), (e.Status, e.Text));
        var t = w.Invoke(101, "sleep\n");
        Assert.Equal(124, t.Status);
        w.SendLine("NOPE");
        Assert.Equal("ERROR unknown command", w.ReadLine());
        using var again = Connect(uds);
        Assert.Equal("AGAIN\n", again.Invoke(102, "again\n").Text);
    }

    private static int Sh(string cmd)
    {
        var r = Repo.Sh(cmd);
        if (r.ExitCode != 0) Console.Error.WriteLine(r.Stdout + r.Stderr);
        return r.ExitCode;
    }
}
