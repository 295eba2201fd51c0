using System.Diagnostics;
using System.Text;
using Flint.Pool;
using Mode = Flint.Pool.Tests.FakeAgentServer.Mode;

namespace Flint.Pool.Tests;

/// <summary>The agent protocol client against a real Unix-socket server, including a hostile agent.</summary>
public sealed class AgentClientTests
{
    private static readonly TimeSpan T = TimeSpan.FromSeconds(2);

    private static async Task<AgentClient> Connect(FakeAgentServer s) => await AgentClient.ConnectAsync(s.Path, 5005, T, default);

    [Fact]
    public async Task Ping_and_many_invocations_run_over_one_connection()
    {
        using var s = new FakeAgentServer(Mode.Upper);
        using var a = await Connect(s);
        await a.PingAsync(T, default);
        for (int i = 0; i < 50; i++)
        {
            var r = await a.InvokeAsync(i.ToString(), Encoding.UTF8.GetBytes($"payload {i}"), 1024, T, default);
            Assert.Equal(0, r.Status);
            Assert.Equal($"PAYLOAD {i}", Encoding.UTF8.GetString(r.Body));
        }
        var empty = await a.InvokeAsync("e", ReadOnlyMemory<byte>.Empty, 1024, T, default);
        Assert.Empty(empty.Body);
        Assert.Equal(1, s.Connections);
    }

    [Fact]
    public async Task A_result_split_across_many_writes_is_reassembled()
    {
        using var s = new FakeAgentServer(Mode.SplitWrites);
        using var a = await Connect(s);
        var r = await a.InvokeAsync("7", "split me"u8.ToArray(), 1024, T, default);
        Assert.Equal("SPLIT ME", Encoding.UTF8.GetString(r.Body));
    }

    [Fact]
    public async Task A_handler_status_other_than_zero_is_a_result_not_an_error()
    {
        using var s = new FakeAgentServer(Mode.Fail);
        using var a = await Connect(s);
        var r = await a.InvokeAsync("1", "x"u8.ToArray(), 1024, T, default);
        Assert.Equal(1, r.Status);
        Assert.Equal("handler failed", Encoding.UTF8.GetString(r.Body));
        s.Handler = Mode.NegativeStatus;
        Assert.Equal(-7, (await a.InvokeAsync("2", "x"u8.ToArray(), 1024, T, default)).Status);
    }

    [Fact]
    public async Task No_agent_listening_is_a_closed_connection()
    {
        using var s = new FakeAgentServer(Mode.NoListener);
        var e = await Assert.ThrowsAsync<AgentException>(() => Connect(s));
        Assert.Equal(AgentFailure.Closed, e.Failure);
    }

    [Fact]
    public async Task A_missing_socket_is_a_closed_connection()
    {
        var e = await Assert.ThrowsAsync<AgentException>(() => AgentClient.ConnectAsync("/tmp/no-such-flint-pool.sock", 5005, T, default));
        Assert.Equal(AgentFailure.Closed, e.Failure);
        Assert.Contains("/tmp/no-such-flint-pool.sock", e.Message);
    }

    [Fact]
    public async Task A_hung_agent_times_out_within_the_deadline_and_the_connection_is_not_reused()
    {
        using var s = new FakeAgentServer(Mode.Hang);
        using var a = await Connect(s);
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<AgentException>(() => a.InvokeAsync("1", "x"u8.ToArray(), 1024, TimeSpan.FromMilliseconds(200), default));
        Assert.Equal(AgentFailure.Timeout, e.Failure);
        Assert.InRange(sw.ElapsedMilliseconds, 150, 1500);
        Assert.Contains("200 ms", e.Message);
        var again = await Assert.ThrowsAsync<AgentException>(() => a.PingAsync(T, default));
        Assert.Equal(AgentFailure.Closed, again.Failure);
    }

    [Theory]
    [InlineData(Mode.Garbage, "HELLO THERE")]
    [InlineData(Mode.WrongId, "id")]
    [InlineData(Mode.HugeLength, "over the limit")]
    [InlineData(Mode.EndlessLine, "longer than")]
    public async Task An_answer_that_is_not_the_protocol_is_garbage(Mode mode, string words)
    {
        using var s = new FakeAgentServer(mode);
        using var a = await Connect(s);
        var e = await Assert.ThrowsAsync<AgentException>(() => a.InvokeAsync("1", "x"u8.ToArray(), 1 << 20, T, default));
        Assert.Equal(AgentFailure.Garbage, e.Failure);
        Assert.Contains(words, e.Message);
    }

    [Fact]
    public async Task An_error_line_is_reported_with_the_agents_text()
    {
        using var s = new FakeAgentServer(Mode.Upper);
        using var a = await Connect(s);
        // An id with a space makes the INVOKE line malformed for the agent, which answers ERROR and closes.
        var e = await Assert.ThrowsAsync<AgentException>(() => a.InvokeAsync("a b", "x"u8.ToArray(), 1024, T, default));
        Assert.Equal(AgentFailure.AgentError, e.Failure);
        Assert.Contains("bad command", e.Message);
    }

    [Fact]
    public async Task An_agent_that_refuses_the_request_line_and_closes_before_the_payload_is_heard()
    {
        // flint-agent answers "ERROR payload too large" before reading the payload and closes; the send of the rest
        // then fails, but the answer already arrived and is what the invoker must see.
        using var s = new FakeAgentServer(Mode.TooLarge);
        for (int i = 0; i < 20; i++)
        {
            using var a = await Connect(s);
            var e = await Assert.ThrowsAsync<AgentException>(() => a.InvokeAsync("1", new byte[4 << 20], 1024, T, default));
            Assert.Equal(AgentFailure.AgentError, e.Failure);
            Assert.Contains("payload too large", e.Message);
        }
    }

    [Fact]
    public async Task A_connection_closed_mid_result_is_reported_as_closed()
    {
        using var s = new FakeAgentServer(Mode.CloseMidResult);
        using var a = await Connect(s);
        var e = await Assert.ThrowsAsync<AgentException>(() => a.InvokeAsync("1", "x"u8.ToArray(), 1024, T, default));
        Assert.Equal(AgentFailure.Closed, e.Failure);
    }

    [Fact]
    public void Guest_bytes_in_messages_are_made_printable_and_short()
    {
        var s = AgentClient.Printable("a\u001b[2Jb\n"u8.ToArray().Concat(new byte[200]).ToArray());
        Assert.DoesNotContain('\u001b', s);
        Assert.Equal(80, s.Length);
    }
}
