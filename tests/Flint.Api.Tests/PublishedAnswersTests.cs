using Flint.Vmm.Rpc;

namespace Flint.Api.Tests;

/// <summary>
/// The polled reads (<c>GET /</c>, <c>/version</c>, <c>/machine-config</c>) are answered on the API thread from what the
/// controller published, without the hand-off to the VMM thread (issue 15, item 10: the round trip), and those
/// answers are exactly the VMM thread's, never stale.
/// </summary>
public sealed class PublishedAnswersTests
{
    private static ApiResponse? Published(Env env, VmmAction a) => env.Controller.Published.TryAnswer(a);

    [Fact]
    public void Each_published_answer_is_the_controllers_own_through_start_pause_and_resume()
    {
        using var env = new Env();
        void Same()
        {
            foreach (VmmAction a in new VmmAction[] { new GetVmInstanceInfo(), new GetVersion() })
                Assert.Equal(env.Controller.Handle(a), Published(env, a));
        }
        Same();
        Assert.Contains("\"Not started\"", Published(env, new GetVmInstanceInfo())!.Body);
        Assert.Equal(204, env.Call("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{env.Kernel}\"}}").Status);
        Assert.Equal(204, env.Call("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").Status);
        Same();
        Assert.Contains("\"Running\"", Published(env, new GetVmInstanceInfo())!.Body);
        Assert.Equal(204, env.Call("PATCH", "/vm", "{\"state\": \"Paused\"}").Status);
        Same();
        Assert.Contains("\"Paused\"", Published(env, new GetVmInstanceInfo())!.Body);
        Assert.Equal(204, env.Call("PATCH", "/vm", "{\"state\": \"Resumed\"}").Status);
        Same();
    }

    [Fact]
    public void The_machine_configuration_is_withdrawn_by_a_change_and_published_again_by_the_next_read()
    {
        using var env = new Env();
        Assert.Null(Published(env, new GetMachineConfig())); // nothing read yet: the first read goes to the VMM thread
        var first = env.Call("GET", "/machine-config");
        Assert.Equal(first, Published(env, new GetMachineConfig()));
        Assert.Equal(204, env.Call("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256}").Status);
        Assert.Null(Published(env, new GetMachineConfig()));
        var second = env.Call("GET", "/machine-config");
        Assert.Contains("\"vcpu_count\":2", second.Body);
        Assert.Equal(second, Published(env, new GetMachineConfig()));
        // A refused change withdraws it too (a failure half-way may have changed something); the next read is right.
        Assert.Equal(400, env.Call("PATCH", "/machine-config", "{\"vcpu_count\": 0}").Status);
        Assert.Null(Published(env, new GetMachineConfig()));
        Assert.Equal(second, env.Call("GET", "/machine-config"));
        Assert.Equal(204, env.Call("PATCH", "/machine-config", "{\"mem_size_mib\": 512}").Status);
        Assert.Contains("\"mem_size_mib\":512", env.Call("GET", "/machine-config").Body);
    }

    [Fact]
    public void Through_the_server_the_polled_reads_are_answered_while_the_VMM_thread_is_busy_and_the_rest_waits_for_it()
    {
        // No VMM thread drains the queue until the test says so: what is answered meanwhile never went through it.
        var controller = new VmmController(_ => new FakeVm(), "test-vm", "1.2.3") { ConfigureLogger = _ => { } };
        using var queued = new QueuedApiHandler(controller);
        using var env = new Env(server: true, handler: new PublishedReadsHandler(controller.Published, queued));
        using var c = env.Connect();
        var info = c.Call("GET", "/");
        Assert.Equal(200, info.Status);
        Assert.Contains("\"state\":\"Not started\"", info.Body);
        Assert.Equal(200, c.Call("GET", "/version").Status);

        // GET /machine-config has not been published yet: it goes to the VMM thread, which publishes it.
        c.Send(Client.Request("GET", "/machine-config"));
        var vmm = new Thread(() =>
        {
            for (int i = 0; i < 1000 && queued.ProcessPending() == 0; i++) Thread.Sleep(10);
        })
        { IsBackground = true };
        vmm.Start();
        Assert.Equal(200, c.Read().Status);
        Assert.True(vmm.Join(TimeSpan.FromSeconds(20)));
        Assert.Equal(200, c.Call("GET", "/machine-config").Status); // now published: no VMM thread needed
        Assert.Equal(0, queued.ProcessPending());
    }
}
