using System.Diagnostics;
using System.Text;
using Flint.TestGuest;

namespace Flint.Agent.Tests;

/// <summary>
/// guest/agent/flint-agent as a host process on a Unix socket (--unix, for tests only): the shared protocol rules with a
/// shell handler that uppercases, then what is particular to running real handlers (exit status, signals, the timeout,
/// the 1 MiB caps, handlers that misbehave) and its configuration from the kernel cmdline.
/// </summary>
public sealed class FlintAgentTests : AgentProtocolTests
{
    private const int Mib = 1 << 20;

    private protected override AgentProcess StartUpperAgent() => Start("tr a-z A-Z"); // Start tracks it too: Dispose is idempotent
    protected override int PayloadLimit => Mib;
    protected override int ManyInvocations => 200; // a fork + exec of /bin/sh each

    /// <summary>flint-agent with a shell handler made of <paramref name="body"/>, plus <paramref name="args"/>.</summary>
    private AgentProcess Start(string body, params string[] args)
    {
        var dir = Directory.CreateTempSubdirectory("flint-agent-").FullName;
        var handler = AgentProcess.WriteScript(Path.Combine(dir, "handler"), body);
        return Track(AgentProcess.FlintAgentRaw(dir, ["--cmdline", "/dev/null", "--handler", handler, .. args]));
    }

    [Fact]
    public void The_handler_exit_status_is_the_result_status_and_its_stdout_the_result()
    {
        using var w = Start("cat >/dev/null; echo failed; exit 3").Connect();
        var r = w.Invoke(77, "in");
        Assert.Equal((77ul, 3, "failed\n"), (r.Id, r.Status, r.Text));
        Assert.Equal("PONG", w.Ping());
    }

    [Fact]
    public void A_handler_killed_by_a_signal_gives_128_plus_the_signal()
    {
        using var w = Start("kill -9 $$").Connect();
        Assert.Equal(137, w.Invoke(1, "x").Status);
    }

    [Fact]
    public void A_handler_over_the_timeout_is_killed_with_what_it_started_and_gives_124()
    {
        // The handler leaves a background sleeper too: the whole process group must go.
        var a = Start("echo started; sleep 60 & echo $! > \"$(dirname \"$0\")/child.pid\"; sleep 60", "--timeout-ms", "300");
        using var w = a.Connect();
        var sw = Stopwatch.StartNew();
        var r = w.Invoke(1, "");
        Assert.Equal(124, r.Status);
        Assert.Equal("started\n", r.Text); // what it wrote before the deadline
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"took {sw.Elapsed}");
        int child = int.Parse(File.ReadAllText(Path.Combine(a.Dir, "child.pid")).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        var gone = Stopwatch.StartNew();
        while (IsAlive(child) && gone.Elapsed < TimeSpan.FromSeconds(5)) Thread.Sleep(20);
        Assert.False(IsAlive(child), "the handler's background child survived the timeout");
        Assert.Equal("PONG", w.Ping());
    }

    /// <summary>Running or not yet reaped by its new parent counts as alive; a zombie does not.</summary>
    private static bool IsAlive(int pid)
    {
        try { return !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal); }
        catch (IOException) { return false; }
    }

    [Fact]
    public void The_result_is_capped_at_1_MiB_and_the_handler_is_not_blocked_by_the_cap()
    {
        using var w = Start("head -c 3000000 /dev/zero; exit 0").Connect(TimeSpan.FromSeconds(30));
        var r = w.Invoke(1, "");
        Assert.Equal(0, r.Status);
        Assert.Equal(Mib, r.Body.Length);
    }

    [Fact]
    public void A_handler_that_ignores_its_stdin_still_answers()
    {
        using var w = Start("echo hi").Connect(TimeSpan.FromSeconds(30));
        var r = w.Invoke(1, new byte[Mib]);
        Assert.Equal((0, "hi\n"), (r.Status, r.Text));
    }

    [Fact]
    public void The_handler_sees_the_payload_on_stdin_and_the_id_in_its_environment()
    {
        using var w = Start("printf '%s:' \"$FLINT_INVOKE_ID\"; wc -c").Connect();
        Assert.Equal("123456789:5", w.Invoke(123456789, "12345").Text.Trim().Replace(" ", ""));
    }

    [Fact]
    public void A_missing_handler_gives_127_and_the_agent_keeps_serving()
    {
        var dir = Directory.CreateTempSubdirectory("flint-agent-").FullName;
        var a = Track(AgentProcess.FlintAgentRaw(dir, "--cmdline", "/dev/null", "--handler", Path.Combine(dir, "nosuch")));
        using var w = a.Connect();
        var r = w.Invoke(1, "x");
        Assert.Equal((127, 0), (r.Status, r.Body.Length));
        Assert.Equal("PONG", w.Ping());
    }

    [Fact]
    public void The_kernel_cmdline_names_the_handler_and_the_timeout()
    {
        var dir = Directory.CreateTempSubdirectory("flint-agent-").FullName;
        var h = AgentProcess.WriteScript(Path.Combine(dir, "h"), "echo from-cmdline; sleep 60");
        var cmdline = Path.Combine(dir, "cmdline");
        File.WriteAllText(cmdline, $"console=ttyS0 reboot=k flint.handler={h} flint.timeout_ms=200 flint.port=6000\n");
        using var w = Track(AgentProcess.FlintAgentRaw(dir, "--cmdline", cmdline)).Connect();
        var r = w.Invoke(1, "");
        Assert.Equal((124, "from-cmdline\n"), (r.Status, r.Text));
    }

    [Fact]
    public void A_host_that_stalls_inside_a_request_gets_ERROR_after_the_io_timeout()
    {
        var a = Start("cat", "--io-timeout-ms", "300");
        using (var w = a.Connect())
        {
            w.Send("INVOKE 1 10\nabc"u8);
            Assert.Equal("ERROR timeout reading the request", w.ReadLine());
            Assert.True(w.ReadsEof());
        }
        using (var w = a.Connect())
        {
            w.Send("PIN"u8);
            Assert.Equal("ERROR timeout reading the request", w.ReadLine());
        }
        using var idle = a.Connect();
        Thread.Sleep(600); // idle between requests is fine: only a started request is bounded
        Assert.Equal("PONG", idle.Ping());
    }

    [Fact]
    public void Bad_flags_exit_2_with_usage()
    {
        foreach (var args in new[] { new[] { "--port", "0" }, ["--timeout-ms", "x"], ["--bogus", "1"], ["--unix"] })
        {
            var psi = new ProcessStartInfo(AgentProcess.FlintAgentBinary) { RedirectStandardError = true };
            foreach (var s in args) psi.ArgumentList.Add(s);
            using var p = Process.Start(psi)!;
            var err = p.StandardError.ReadToEnd();
            Assert.True(p.WaitForExit(5000));
            Assert.Equal(2, p.ExitCode);
            Assert.Contains("usage: flint-agent", err);
        }
    }

    [Fact]
    public void Concurrent_connections_are_served_one_after_the_other()
    {
        var a = Start("cat >/dev/null; sleep 0.2; echo done");
        using var w1 = a.Connect();
        using var w2 = a.Connect(); // queued in the listen backlog until w1 closes
        w1.SendInvoke(1, "x"u8);
        w2.SendInvoke(2, "y"u8);
        Assert.Equal((1ul, "done\n"), (w1.ReadResult() is var r1 ? (r1.Id, r1.Text) : default));
        w1.Dispose();
        var r2 = w2.ReadResult();
        Assert.Equal((2ul, "done\n"), (r2.Id, r2.Text));
    }
}
