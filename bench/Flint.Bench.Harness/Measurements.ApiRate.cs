using System.Diagnostics;

namespace Flint.Bench.Harness;

/// <summary>
/// API request rate: how many requests a fresh Flint answers per second, back to back (each request waits for its
/// answer, no pipelining), on one keep-alive connection and on several at once, each driven by its own client
/// thread. Flint only: Firecracker publishes no request-rate figure, and QMP is not the same API.
/// </summary>
internal sealed partial class Measurements
{
    public void ApiRate()
    {
        const string sec = "apirate";
        int k = _s.ApiRateConnections;
        var get = UdsHttp.Request("GET", "/");
        var put = UdsHttp.Request("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256}");
        var cases = new (string Metric, byte[] Req, int Status, int Conns)[]
        {
            ("`GET /`, one connection", get, 200, 1),
            ($"`GET /`, {k} connections at once", get, 200, k),
            ("`PUT /machine-config` (pre-boot), one connection", put, 204, 1),
            ($"`PUT /machine-config` (pre-boot), {k} connections at once", put, 204, k),
        };
        var series = cases.Select(c =>
        {
            Add(sec, c.Metric, "QEMU", "requests/s").NotMeasured = "Flint only (QMP is another API)";
            return Add(sec, c.Metric, "Flint", "requests/s");
        }).ToArray();
        for (int round = 0; round < _s.ApiRateRounds; round++)
            for (int i = 0; i < cases.Length; i++)
            {
                string sock = NewPath("f") + ".sock";
                using var c = StartFlint(sock, false);
                var (_, first) = WaitForApi(c, sock);
                first.Dispose();
                series[i].Samples.Add(RequestRate(sock, cases[i].Req, cases[i].Status, cases[i].Conns));
                c.Kill();
                File.Delete(sock);
            }
        Log("api rate: " + string.Join("; ", cases.Select((c, i) => $"{c.Metric} {Stats.Median(series[i].Samples):F0}/s")));
    }

    /// <summary>Requests answered per second over the window, all connections together (after a short warm-up on each).</summary>
    private double RequestRate(string sock, byte[] request, int status, int conns)
    {
        long span = (long)(_s.ApiRateWindow.TotalSeconds * Stopwatch.Frequency);
        var counts = new long[conns];
        Exception? failure = null;
        using var warm = new Barrier(conns + 1);
        using var go = new Barrier(conns + 1);
        long t0 = 0;
        var threads = Enumerable.Range(0, conns).Select(i => new Thread(() =>
        {
            UdsHttp? h = null;
            try
            {
                h = UdsHttp.TryConnect(sock) ?? throw new InvalidOperationException("the API socket refused a connection");
                for (int w = 0; w < 20; w++) h.Send(request);
            }
            catch (Exception e) { failure ??= e; }
            warm.SignalAndWait();
            go.SignalAndWait();
            try
            {
                long end = Volatile.Read(ref t0) + span, n = 0;
                while (h != null && failure == null && Stopwatch.GetTimestamp() < end)
                {
                    var (st, body) = h.Send(request);
                    if (st != status) throw new InvalidOperationException($"answered {st}: {body}");
                    n++;
                }
                counts[i] = n;
            }
            catch (Exception e) { failure ??= e; }
            finally { h?.Dispose(); }
        })
        { IsBackground = true, Name = $"api-rate-{i}" }).ToList();
        foreach (var t in threads) t.Start();
        // The clock starts once every connection is open and warm, and is published before the threads are released.
        warm.SignalAndWait();
        Volatile.Write(ref t0, Stopwatch.GetTimestamp());
        go.SignalAndWait();
        foreach (var t in threads) t.Join();
        long t1 = Stopwatch.GetTimestamp();
        if (failure != null) throw new InvalidOperationException($"API request rate: {failure.Message}");
        return counts.Sum() / ((t1 - t0) / (double)Stopwatch.Frequency);
    }
}
