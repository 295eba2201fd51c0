using System.Diagnostics;
using System.Text;

namespace Flint.Bench.Harness;

/// <summary>
/// Snapshot rows: Flint's Full snapshot (PUT /snapshot/create, PUT /snapshot/load with the File backend) beside QEMU's
/// migration to a file (`migrate "exec:cat > FILE"`, then `-incoming "exec:cat FILE"`), on the same guest: the test
/// guest printing its `tg.seq` sequence, so "running again" is a line the restored guest prints. Sizes 128 MiB and
/// 1 GiB; A B A B as every other step.
/// </summary>
internal sealed partial class Measurements
{
    // A long sequence, slow enough that a pause lands mid-sequence and a restored guest prints its next line soon.
    private const string SeqArgs = "tg.tests=serial,seq tg.seq=100000000 tg.seq.spin=200000";
    // The smoke run (scripts/test.sh) keeps to the small guest: three 1 GiB clones of each VMM are too much for it.
    // How long a guest line may take: 120 s was too short for the first boot in the nested tier at host load ~70
    // (2026-12-07: "flint: no 'seq 2' line").
    private const int BootWaitS = 400;
    private int[] SnapshotSizesMiB => _s.Smoke && Environment.GetEnvironmentVariable("FLINT_BENCH_SNAPSHOT_1G") != "1" ? [128] : [128, 1024];

    /// <summary>
    /// The load body's `mem_backend` for the Uffd rows: flint-uffd-handler (beside flint) listening on
    /// <paramref name="handlerSocket"/>, serving the memory file. Null turns the Uffd rows off.
    /// </summary>
    private static string? UffdMemBackend(string handlerSocket) =>
        $"{{\"backend_type\": \"Uffd\", \"backend_path\": {J(handlerSocket)}}}";

    private string UffdHandler => Path.Combine(Path.GetDirectoryName(_s.Flint)!, "flint-uffd-handler");

    /// <summary>What the file system allocated for the file (st_blocks, as `du` counts), in bytes.</summary>
    private static long AllocatedBytes(string path)
    {
        var psi = new ProcessStartInfo("stat", ["-c", "%b %B", path]) { RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        string[] f = p.StandardOutput.ReadToEnd().Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        p.WaitForExit();
        return f.Length == 2 ? long.Parse(f[0]) * long.Parse(f[1]) : new FileInfo(path).Length;
    }

    public void Snapshots()
    {
        const string sec = "snapshot";
        bool kvm = HasKvm;
        string? tcg = QemuAccel.GuestRowLabel;
        foreach (int mib in SnapshotSizesMiB)
        {
            string size = mib >= 1024 ? $"{mib / 1024} GiB" : $"{mib} MiB";
            var fCreate = Add(sec, $"{size} guest: pause + save (Flint: PATCH Paused + PUT /snapshot/create Full; QEMU: `stop` + `migrate exec:cat>FILE` until completed)", "Flint", "ms");
            var qCreate = Add(sec, fCreate.Metric, "QEMU", "ms", tcg);
            var fState = Add(sec, $"{size} guest: files written (Flint: state file + memory file, allocated as du counts; QEMU: migration stream)", "Flint", "MiB", "sparse: zero pages are holes");
            var qState = Add(sec, fState.Metric, "QEMU", "MiB", "zero pages are not written");
            var fLoadApi = Add(sec, $"{size} guest: PUT /snapshot/load (File backend, resume_vm) answered", "Flint", "ms");
            var qLoadApi = Add(sec, fLoadApi.Metric, "QEMU", "ms");
            qLoadApi.NotMeasured = "no equivalent: QEMU loads while it starts (next row)";
            var fRun = Add(sec, $"{size} guest: process start -> restored guest prints its next line (Flint: API, load, resume; QEMU: `-incoming exec:cat FILE`, `cont`)", "Flint", "ms");
            var qRun = Add(sec, fRun.Metric, "QEMU", "ms", tcg);
            var fClone = Add(sec, $"{size} guest: PSS added per extra clone (3 restored from one snapshot, running)", "Flint", "MiB", "memory file shared (page cache)");
            var qClone = Add(sec, fClone.Metric, "QEMU", "MiB", tcg);
            var fUffdLoad = Add(sec, $"{size} guest: PUT /snapshot/load (Uffd backend, flint-uffd-handler, resume_vm) answered", "Flint", "ms");
            var fUffd = Add(sec, $"{size} guest: process start -> restored guest prints its next line, Uffd backend (handler already listening)", "Flint", "ms");
            var fUffdCopied = Add(sec, $"{size} guest: Uffd backend, pages flint-uffd-handler copied from the memory file (load until the guest's next line)", "Flint", "pages");
            var fUffdZero = Add(sec, $"{size} guest: Uffd backend, pages flint-uffd-handler answered with the zero page (holes of the memory file)", "Flint", "pages");
            var uffdRows = new[] { fUffdLoad, fUffd, fUffdCopied, fUffdZero };
            bool uffd = UffdMemBackend("x") != null && File.Exists(UffdHandler);
            if (!uffd) foreach (var s in uffdRows) s.NotMeasured = $"not measured: no {UffdHandler} (scripts/setup.sh publishes it)";
            var flintRows = new[] { fCreate, fState, fLoadApi, fRun, fClone }.Concat(uffdRows).ToArray();
            var qemuRows = new[] { qCreate, qState, qRun, qClone };
            if (!kvm) foreach (var s in flintRows) s.NotMeasured = NoKvm;

            for (int i = 0; i < _s.SnapshotRuns; i++)
            {
                // One VMM's failure (a bound too short in the nested tier) leaves its rows unmeasured with the reason,
                // and the other VMM and the other size still run: a nested run is too long to lose to one timeout.
                if (kvm) Guarded($"flint {size}", flintRows, () => FlintSnapshot(mib, fCreate, fState, fLoadApi, fRun, i == 0 ? fClone : null, uffd ? new UffdSeries(fUffdLoad, fUffd, fUffdCopied, fUffdZero) : null));
                Guarded($"qemu {size}", qemuRows, () => QemuSnapshot(mib, qCreate, qState, qRun, i == 0 ? qClone : null));
            }
            Log($"snapshot {size}: flint create {Med(fCreate)} ms, {Med(fState)} MiB, load {Med(fLoadApi)} ms, load->line {Med(fRun)} ms, +{Med(fClone)} MiB/clone, uffd load {Med(fUffdLoad)} ms, uffd start->line {Med(fUffd)} ms ({Med(fUffdCopied)} pages copied, {Med(fUffdZero)} zero pages); " +
                $"qemu ({QemuAccel.Name}) create {Med(qCreate)} ms, {Med(qState)} MiB, incoming->line {Med(qRun)} ms, +{Med(qClone)} MiB/clone");
        }
    }

    /// <summary>The Uffd rows one restore fills.</summary>
    private sealed record UffdSeries(Series Load, Series Run, Series Copied, Series Zero);

    /// <summary>
    /// Runs one VMM's part and saves the results so far; when it fails, each of <paramref name="rows"/> still without a
    /// sample says why (the others keep what was measured before the failure).
    /// </summary>
    private void Guarded(string what, Series[] rows, Action part)
    {
        try { part(); }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException or IOException)
        {
            Log($"snapshot {what} stopped early: {e}");
            foreach (var s in rows)
                if (s.Samples.Count == 0 && s.NotMeasured == null) s.NotMeasured = $"not measured: {what} stopped early: {e.Message}";
        }
        // Saved after each VMM's part, not each size: the nested run of 2026-12-07 measured Flint's 1 GiB rows, and an
        // L1 time limit during QEMU's 1 GiB part would have lost them.
        Checkpoint?.Invoke();
    }

    private static string Med(Series s) => s.Samples.Count > 0 ? Stats.Median(s.Samples).ToString("F1") : "-";

    private static void Send(UdsHttp conn, string method, string path, string body, int want = 204)
    {
        var (st, resp) = conn.Send(UdsHttp.Request(method, path, body));
        if (st != want) throw new InvalidOperationException($"{method} {path}: {st} {resp}");
    }

    private void FlintSnapshot(int mib, Series create, Series files, Series loadApi, Series run, Series? clone, UffdSeries? uffd)
    {
        string snap = NewPath("snap") + ".state", mem = NewPath("snap") + ".mem";
        {
            var (c, sock, _) = BootFlint(_s.TestGuest, SeqArgs, mib, drive: null);
            using var booted = c; // disposed (killed) at the end of this block, as before
            _ = c.WaitForLine("seq 2 ", TimeSpan.FromSeconds(BootWaitS), out _) ?? throw new TimeoutException("flint: no 'seq 2' line");
            // A fresh connection: flint closes a keep-alive connection left idle while the guest ran (first nested run:
            // EPIPE on the PATCH).
            using (var api = UdsHttp.TryConnect(sock) ?? throw new IOException("flint: cannot reconnect to its API"))
            {
                long t0 = Stopwatch.GetTimestamp();
                Send(api, "PATCH", "/vm", "{\"state\": \"Paused\"}");
                Put(api, "/snapshot/create", $"{{\"snapshot_type\": \"Full\", \"snapshot_path\": {J(snap)}, \"mem_file_path\": {J(mem)}}}");
                create.Samples.Add(Ms(t0, Stopwatch.GetTimestamp()));
                files.Samples.Add((AllocatedBytes(snap) + AllocatedBytes(mem)) / 1048576.0);
                Log($"snapshot {mib} MiB: memory file {new FileInfo(mem).Length / 1048576.0:F1} MiB long, {AllocatedBytes(mem) / 1048576.0:F1} MiB allocated; state file {new FileInfo(snap).Length} bytes");
            }
        }
        var clones = new List<Child>();
        try
        {
            int n = clone != null ? 3 : 1;
            var pss = new List<double>();
            for (int k = 0; k < n; k++)
            {
                string sock = NewPath("f") + ".sock";
                var c = StartFlint(sock, true);
                clones.Add(c);
                var (_, conn) = WaitForApi(c, sock);
                using (conn)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    Put(conn, "/snapshot/load", $"{{\"snapshot_path\": {J(snap)}, \"mem_backend\": {{\"backend_type\": \"File\", \"backend_path\": {J(mem)}}}, \"resume_vm\": true}}");
                    long t1 = Stopwatch.GetTimestamp();
                    long line = c.WaitForLine("seq ", TimeSpan.FromSeconds(BootWaitS), out _) ?? throw new TimeoutException("flint: the restored guest printed nothing");
                    if (k == 0)
                    {
                        loadApi.Samples.Add(Ms(t0, t1));
                        run.Samples.Add(Ms(c.SpawnTimestamp, line));
                    }
                }
                if (clone != null) pss.Add(SettledPssSum(clones));
            }
            if (clone != null) clone.Samples.Add((pss[^1] - pss[0]) / (n - 1));
            foreach (var c in clones) c.Dispose();
            clones.Clear();
            if (uffd != null) FlintUffdRestore(snap, mem, uffd);
        }
        finally
        {
            foreach (var c in clones) c.Dispose();
            File.Delete(snap);
            File.Delete(mem);
        }
    }

    /// <summary>
    /// The same restore through the Uffd backend: flint-uffd-handler listens first (a page-fault service runs before
    /// the VMs it serves), then flint is spawned, loads with `backend_type: Uffd` and resumes; timed as the File row.
    /// </summary>
    private void FlintUffdRestore(string snap, string mem, UffdSeries rows)
    {
        string handlerSock = NewPath("uffd") + ".sock";
        File.Delete(handlerSock);
        using var handler = Child.Start(UffdHandler, [handlerSock, mem], true);
        _ = handler.WaitForLine("listening on", TimeSpan.FromSeconds(30), out string? listening) ?? throw new TimeoutException("flint-uffd-handler did not start listening");
        Log($"snapshot uffd: {listening}");
        string sock = NewPath("f") + ".sock";
        using (var c = StartFlint(sock, true))
        {
            var (_, conn) = WaitForApi(c, sock);
            using (conn)
            {
                long t0 = Stopwatch.GetTimestamp();
                Put(conn, "/snapshot/load", $"{{\"snapshot_path\": {J(snap)}, \"mem_backend\": {UffdMemBackend(handlerSock)}, \"resume_vm\": true}}");
                long t1 = Stopwatch.GetTimestamp();
                long line = c.WaitForLine("seq ", TimeSpan.FromSeconds(BootWaitS), out _) ?? throw new TimeoutException("flint (Uffd): the restored guest printed nothing");
                rows.Load.Samples.Add(Ms(t0, t1));
                rows.Run.Samples.Add(Ms(c.SpawnTimestamp, line));
            }
        }
        // flint is gone (killed): its socket end closed, the handler prints its counts and exits.
        _ = handler.WaitForLine("served ", TimeSpan.FromSeconds(60), out string? stats);
        Log($"snapshot uffd: {stats ?? "the handler printed no counts"}");
        var m = stats == null ? null : System.Text.RegularExpressions.Regex.Match(stats, @"served (\d+) pages \((\d+) zero pages");
        if (m is { Success: true })
        {
            rows.Copied.Samples.Add(long.Parse(m.Groups[1].Value));
            rows.Zero.Samples.Add(long.Parse(m.Groups[2].Value));
        }
        File.Delete(handlerSock);
    }

    /// <summary>PSS of all the processes together (MiB), after they ran a moment: a restored guest touches its pages as it goes.</summary>
    private static double SettledPssSum(List<Child> cs)
    {
        Thread.Sleep(300);
        return cs.Sum(c => c.Memory().PssKiB) / 1024.0;
    }

    private List<string> QemuSnapshotArgs(int mib, string qmpSock) =>
    [
        .. QemuArgs(qmpSock, mib, 1, minimalMachine: true),
        "-display", "none", "-monitor", "none", "-no-reboot", "-global", "virtio-mmio.force-legacy=false",
        "-kernel", _s.TestGuest, "-append", "tg.boottimer=0 " + SeqArgs, "-serial", "stdio",
    ];

    private static byte[] QmpJson(string json) => Encoding.UTF8.GetBytes(json + "\n");

    private static void WaitForQmpStatus(Qmp q, byte[] query, string want, TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            string r = q.Execute(query);
            if (r.Contains($"\"status\": \"{want}\"", StringComparison.Ordinal) || r.Contains($"\"status\":\"{want}\"", StringComparison.Ordinal)) return;
            if (r.Contains("\"failed\"", StringComparison.Ordinal)) throw new InvalidOperationException($"QEMU: {r}");
            if (Stopwatch.GetTimestamp() > deadline) throw new TimeoutException($"QEMU never reached {want}: {r}");
            Native.usleep(500);
        }
    }

    private void QemuSnapshot(int mib, Series create, Series files, Series run, Series? clone)
    {
        string file = NewPath("migr") + ".bin";
        {
            string sock = NewPath("q") + ".sock";
            File.Delete(sock);
            using var c = Child.Start(_s.Qemu, QemuSnapshotArgs(mib, sock), true);
            var (_, q) = WaitForQmp(c, sock);
            using (q)
            {
                q.Execute(Qmp.Command("cont"));
                _ = c.WaitForLine("seq 2 ", TimeSpan.FromSeconds(BootWaitS), out _) ?? throw new TimeoutException("qemu: no 'seq 2' line");
                long t0 = Stopwatch.GetTimestamp();
                q.Execute(Qmp.Command("stop"));
                q.Execute(QmpJson($"{{\"execute\":\"migrate\",\"arguments\":{{\"uri\":{J("exec:cat > " + file)}}}}}"));
                WaitForQmpStatus(q, Qmp.Command("query-migrate"), "completed", TimeSpan.FromSeconds(300));
                create.Samples.Add(Ms(t0, Stopwatch.GetTimestamp()));
                files.Samples.Add(new FileInfo(file).Length / 1048576.0);
            }
        }
        var clones = new List<Child>();
        try
        {
            int n = clone != null ? 3 : 1;
            var pss = new List<double>();
            for (int k = 0; k < n; k++)
            {
                string sock = NewPath("q") + ".sock";
                File.Delete(sock);
                var c = Child.Start(_s.Qemu, [.. QemuSnapshotArgs(mib, sock), "-incoming", "exec:cat " + file], true);
                clones.Add(c);
                var (_, q) = WaitForQmp(c, sock);
                using (q)
                {
                    // The source was stopped before it was saved, so the destination comes up paused once the stream is in.
                    WaitForQmpStatus(q, Qmp.Command("query-status"), "paused", TimeSpan.FromSeconds(300));
                    q.Execute(Qmp.Command("cont"));
                }
                long line = c.WaitForLine("seq ", TimeSpan.FromSeconds(BootWaitS), out _) ?? throw new TimeoutException("qemu: the restored guest printed nothing");
                if (k == 0) run.Samples.Add(Ms(c.SpawnTimestamp, line));
                if (clone != null) pss.Add(SettledPssSum(clones));
            }
            if (clone != null) clone.Samples.Add((pss[^1] - pss[0]) / (n - 1));
        }
        finally
        {
            foreach (var c in clones) c.Dispose();
            File.Delete(file);
        }
    }
}
