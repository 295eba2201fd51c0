using System.Text;

namespace Flint.Api.Tests;

public class AllocationTests
{
    [Fact]
    public void Parsing_a_request_head_allocates_nothing()
    {
        var buf = Encoding.ASCII.GetBytes(
            "PUT /drives/rootfs HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\nContent-Type: application/json\r\n" +
            "Content-Length: 10\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n\r\n0123456789");
        var get = Encoding.ASCII.GetBytes("GET /machine-config HTTP/1.1\r\n\r\n");
        var cache = new PathCache();
        byte[] outBuf = new byte[4096];
        const string body = "{\"fault_message\":\"x\"}";

        void Once()
        {
            for (int k = 0; k < 2; k++)
            {
                var b = k == 0 ? buf : get;
                var st = HttpRequestParser.TryParse(b, 8192, out var head, out _);
                if (st != HttpParseStatus.Complete) throw new InvalidOperationException();
                string m = PathCache.Method(b.AsSpan(head.MethodStart, head.MethodLength));
                string p = cache.Get(b.AsSpan(head.PathStart, head.PathLength));
                if (m.Length == 0 || p.Length == 0) throw new InvalidOperationException();
            }
            int end = 0;
            HttpResponseWriter.Write(ref outBuf, ref end, 400, body, true);
            HttpResponseWriter.Write(ref outBuf, ref end, 204, null, true);
        }

        for (int i = 0; i < 100; i++) Once(); // warm up (JIT, cache fill)
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10_000; i++) Once();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
    }

    [Fact]
    public void Parsed_fields_are_right()
    {
        var b = Encoding.ASCII.GetBytes("\r\nPATCH http://localhost/vm HTTP/1.0\r\nconnection: Keep-Alive\r\ncontent-length:  19 \r\n\r\n");
        Assert.Equal(HttpParseStatus.Complete, HttpRequestParser.TryParse(b, 8192, out var h, out _));
        Assert.Equal("PATCH", Encoding.ASCII.GetString(b, h.MethodStart, h.MethodLength));
        Assert.Equal("/vm", Encoding.ASCII.GetString(b, h.PathStart, h.PathLength));
        Assert.Equal(19, h.ContentLength);
        Assert.True(h.KeepAlive);
        Assert.Equal(0, h.VersionMinor);
        Assert.Equal(b.Length, h.HeadLength);
        Assert.Equal(HttpParseStatus.Incomplete, HttpRequestParser.TryParse(b.AsSpan(0, 20), 8192, out _, out _));
    }

    [Fact]
    public void Routing_the_polled_GETs_allocates_nothing()
    {
        string[] paths = ["/", "/version", "/machine-config", "/vm/config", "/balloon/statistics/"];
        foreach (var p in paths) Assert.NotNull(Flint.Vmm.Rpc.ApiRequestParser.Parse("GET", p, null).Action);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10_000; i++)
            foreach (var p in paths) Flint.Vmm.Rpc.ApiRequestParser.Parse("GET", p, null);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.IsType<Flint.Vmm.Rpc.GetVersion>(Flint.Vmm.Rpc.ApiRequestParser.Parse("GET", "/version/", null).Action);
        Assert.NotNull(Flint.Vmm.Rpc.ApiRequestParser.Parse("GET", "/", "{}").Error); // a GET body still fails
    }
    /// <summary>
    /// The reads clients poll are answered on the API thread from the published answers, allocating nothing; before,
    /// each went to the VMM thread, which serialized a new body for every GET / (issue 15, item 10).
    /// </summary>
    [Fact]
    public void Answering_the_polled_reads_on_the_API_thread_allocates_nothing()
    {
        var controller = new Flint.Vmm.Rpc.VmmController(_ => throw new InvalidOperationException(), "id", "1.0");
        controller.Handle(new Flint.Vmm.Rpc.GetMachineConfig()); // the first read of it publishes it
        var handler = new Flint.Vmm.Rpc.PublishedReadsHandler(controller.Published, new Unreachable());
        Flint.Vmm.Rpc.VmmAction[] reads = [new Flint.Vmm.Rpc.GetVmInstanceInfo(), new Flint.Vmm.Rpc.GetVersion(), new Flint.Vmm.Rpc.GetMachineConfig()];
        foreach (var a in reads) Assert.Equal(200, handler.Handle(a).Status);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10_000; i++)
            foreach (var a in reads) handler.Handle(a);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    private sealed class Unreachable : Flint.Vmm.Rpc.IApiHandler
    {
        public Flint.Vmm.Rpc.ApiResponse Handle(Flint.Vmm.Rpc.VmmAction action) => throw new InvalidOperationException($"{action} reached the VMM thread");
    }

    private static object? s_sink; // keeps the reference allocations below on the heap (no stack allocation)

    /// <summary>
    /// PUT /machine-config (the configuration request every client sends) parses without allocating: the only bytes
    /// are the action the VMM keeps (PutMachineConfig and its MachineConfig), not a JSON tree and its strings.
    /// </summary>
    [Fact]
    public void Parsing_PUT_machine_config_allocates_only_the_action()
    {
        string[] bodies =
        [
            "{\"vcpu_count\": 2, \"mem_size_mib\": 1024}",
            "{ \"vcpu_count\": 1, \"mem_size_mib\": 128, \"smt\": false, \"track_dirty_pages\": true, \"huge_pages\": \"None\" }",
            "{\"vcpu_count\":4,\"mem_size_mib\":4096,\"cpu_template\":\"None\",\"smt\":null}\n",
        ];
        foreach (var b in bodies) Assert.IsType<Flint.Vmm.Rpc.PutMachineConfig>(Flint.Vmm.Rpc.ApiRequestParser.Parse("PUT", "/machine-config", b).Action);

        const int n = 10_000;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < n; i++)
            s_sink = new Flint.Vmm.Rpc.PutMachineConfig(new Flint.Vmm.Config.MachineConfig { VcpuCount = i, HugePages = "None" });
        long actionBytes = (GC.GetAllocatedBytesForCurrentThread() - before) / n;

        foreach (var b in bodies)
        {
            before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < n; i++) s_sink = Flint.Vmm.Rpc.ApiRequestParser.Parse("PUT", "/machine-config", b).Action;
            Assert.Equal(actionBytes, (GC.GetAllocatedBytesForCurrentThread() - before) / n);
        }
    }
}
