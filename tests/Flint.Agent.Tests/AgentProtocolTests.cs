using System.Text;
using Flint.TestGuest;

namespace Flint.Agent.Tests;

/// <summary>
/// The protocol rules both agents share (docs/agent-protocol.md): PING/PONG, INVOKE/RESULT with the id echoed, many
/// exchanges on one connection, ERROR and close on anything else, the payload limit, a new connection after one closes.
/// Each derived class starts its agent with an uppercasing handler.
/// </summary>
public abstract class AgentProtocolTests : IDisposable
{
    private readonly List<AgentProcess> _agents = [];

    /// <summary>An agent whose handler answers the payload uppercased with status 0.</summary>
    private protected abstract AgentProcess StartUpperAgent();

    /// <summary>The largest payload this agent takes.</summary>
    protected abstract int PayloadLimit { get; }

    /// <summary>Exchanges the many-invocations test makes on one connection.</summary>
    protected abstract int ManyInvocations { get; }

    private protected AgentProcess Track(AgentProcess a)
    {
        _agents.Add(a);
        return a;
    }

    public void Dispose()
    {
        foreach (var a in _agents) a.Dispose();
        GC.SuppressFinalize(this);
    }

    private AgentProcess Upper() => Track(StartUpperAgent());

    [Fact]
    public void Ping_is_answered_with_pong()
    {
        using var w = Upper().Connect();
        Assert.Equal("PONG", w.Ping());
        Assert.Equal("PONG", w.Ping());
    }

    [Fact]
    public void Invoke_returns_the_handler_result_with_the_request_id()
    {
        using var w = Upper().Connect();
        var r = w.Invoke(42, "hello, agent");
        Assert.Equal(42ul, r.Id);
        Assert.Equal(0, r.Status);
        Assert.Equal("HELLO, AGENT", r.Text);
        r = w.Invoke(ulong.MaxValue, "");
        Assert.Equal(ulong.MaxValue, r.Id);
        Assert.Empty(r.Body);
    }

    [Fact]
    public void Many_invocations_share_one_connection()
    {
        var a = Upper();
        using var w = a.Connect();
        for (int i = 0; i < ManyInvocations; i++)
        {
            var r = w.Invoke((ulong)i, $"call {i} abc");
            Assert.Equal((ulong)i, r.Id);
            Assert.Equal($"CALL {i} ABC", r.Text);
            if (i % 50 == 0) Assert.Equal("PONG", w.Ping());
        }
    }

    [Fact]
    public void A_payload_at_the_limit_round_trips_and_one_byte_more_is_refused()
    {
        var a = Upper();
        var payload = new byte[PayloadLimit];
        for (int i = 0; i < payload.Length; i++) payload[i] = (byte)('a' + i % 26);
        using (var w = a.Connect(TimeSpan.FromSeconds(30)))
        {
            var r = w.Invoke(1, payload);
            Assert.Equal(0, r.Status);
            Assert.Equal(Encoding.ASCII.GetString(payload).ToUpperInvariant(), Encoding.ASCII.GetString(r.Body));
        }
        using (var w = a.Connect())
        {
            w.SendLine($"INVOKE 2 {PayloadLimit + 1}");
            Assert.Equal("ERROR payload too large", w.ReadLine());
            Assert.True(w.ReadsEof());
        }
    }

    /// <summary>Lines that are neither PING nor a well-formed INVOKE (each is sent on its own connection).</summary>
    public static readonly string[] MalformedLines =
    [
        "HELLO", "ping", "PING ", "PING\r", "", "RESULT 1 0 0", "INVOKE", "INVOKE ", "INVOKE 1", "INVOKE 1 ",
        "INVOKE x 1", "INVOKE 1 x", "INVOKE -1 1", "INVOKE 1 +1", "INVOKE 1  1", "INVOKE 1 1 1",
        "INVOKE 18446744073709551616 1", // 2^64: does not fit a u64
        "INVOKE 1 99999999999999999999999",
    ];

    /// <summary>One agent for all the lines (a process per line made this the slowest test here); after each ERROR
    /// the agent must serve the next connection.</summary>
    [Fact]
    public void A_malformed_line_gets_ERROR_and_the_connection_closes()
    {
        var a = Upper();
        foreach (var line in MalformedLines)
        {
            using var w = a.Connect();
            Assert.Equal("PONG", w.Ping());
            w.SendLine(line);
            var answer = w.ReadLine();
            Assert.True(answer != null && answer.StartsWith("ERROR ", StringComparison.Ordinal), $"'{line}' -> '{answer}'");
            Assert.True(w.ReadsEof(), $"'{line}': the connection stayed open");
        }
        using var again = a.Connect();
        Assert.Equal("PONG", again.Ping());
    }

    [Fact]
    public void An_overlong_line_gets_ERROR_without_waiting_for_its_end()
    {
        var a = Upper();
        using var w = a.Connect();
        w.Send(Encoding.ASCII.GetBytes(new string('A', 200))); // no newline: the agent must not keep reading
        Assert.Equal("ERROR line too long", w.ReadLine());
        Assert.True(w.ReadsEof());
    }

    [Fact]
    public void The_agent_accepts_a_new_connection_after_one_closes_mid_request()
    {
        var a = Upper();
        using (var w = a.Connect())
        {
            w.Send("INVOKE 5 100\nonly part"u8);
        }
        using (var w = a.Connect())
        {
            w.Send("PI"u8);
        }
        for (int i = 0; i < 20; i++)
        {
            using var w = a.Connect();
            Assert.Equal("PONG", w.Ping());
            Assert.Equal("X", w.Invoke((ulong)i, "x").Text);
        }
    }

    [Fact]
    public void A_request_split_into_single_bytes_is_one_request()
    {
        using var w = Upper().Connect();
        foreach (var b in "INVOKE 9 3\nabc"u8.ToArray()) w.Send([b]);
        var r = w.ReadResult();
        Assert.Equal(9ul, r.Id);
        Assert.Equal("ABC", r.Text);
    }
}

/// <summary>The test guest's agent.c (built for the host by tests/testguest's Makefile) with its built-in handlers.</summary>
public sealed class TestGuestAgentTests : AgentProtocolTests
{
    private protected override AgentProcess StartUpperAgent() => AgentProcess.TestGuestAgent();
    protected override int PayloadLimit => 65536;
    protected override int ManyInvocations => 2000;

    [Fact]
    public void Sum_answers_the_decimal_byte_sum()
    {
        using var w = Track(AgentProcess.TestGuestAgent("sum")).Connect();
        var r = w.Invoke(3, "abc");
        Assert.Equal((0, "294"), (r.Status, r.Text));
        Assert.Equal("0", w.Invoke(4, "").Text);
        Assert.Equal((255 * 65536).ToString(System.Globalization.CultureInfo.InvariantCulture),
            w.Invoke(5, Enumerable.Repeat((byte)255, 65536).ToArray()).Text);
    }

    [Fact]
    public void Fail_answers_status_3()
    {
        using var w = Track(AgentProcess.TestGuestAgent("fail")).Connect();
        var r = w.Invoke(8, "x");
        Assert.Equal((8ul, 3, "failed\n"), (r.Id, r.Status, r.Text));
    }

    [Fact]
    public void Hang_reads_the_request_and_never_answers_but_pongs_and_takes_the_next_connection()
    {
        var a = Track(AgentProcess.TestGuestAgent("hang"));
        using (var w = a.Connect(TimeSpan.FromMilliseconds(500)))
        {
            Assert.Equal("PONG", w.Ping());
            w.SendInvoke(1, "abc"u8);
            Assert.Throws<System.Net.Sockets.SocketException>(() => w.ReadLine()); // the receive timeout
        }
        using var again = a.Connect();
        Assert.Equal("PONG", again.Ping());
    }

    [Fact]
    public void Garbage_answers_something_that_is_not_a_RESULT_line()
    {
        using var w = Track(AgentProcess.TestGuestAgent("garbage")).Connect();
        w.SendInvoke(1, "abc"u8);
        var line = w.ReadLine();
        Assert.NotNull(line);
        Assert.False(line.StartsWith("RESULT ", StringComparison.Ordinal), line);
        Assert.Equal("PONG", w.Ping()); // and it goes on serving
    }

    [Fact]
    public void An_unknown_handler_name_is_refused_at_start()
    {
        using var a = AgentProcess.TestGuestAgent("nosuch");
        Assert.True(a.WaitForExitAndOutput(TimeSpan.FromSeconds(10)));
        Assert.Contains("FAIL agent: unknown tg.agent.handler", a.Log);
    }
}
