using System.Diagnostics;
using System.Text.Json;
using Flint.Vmm.Config;
using Flint.Vmm.Logging;
using Flint.Vmm.Metrics;

namespace Flint.Vmm.Tests;

/// <summary>
/// The log and metrics destinations: a FIFO nobody reads neither blocks the opener nor the writer (lines are dropped
/// and counted), a full disk is reported, and the config file's "logger" and "metrics" sections are applied.
/// </summary>
[Collection("process logger")]
public sealed class OutputsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("flint-outputs-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private string Fifo(string name)
    {
        string path = Path.Combine(_dir, name);
        using var p = Process.Start("mkfifo", [path]);
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        return path;
    }

    /// <summary>Runs <paramref name="f"/> with a deadline: the old code blocked in open(2) on a FIFO with no reader.</summary>
    private static T Within<T>(TimeSpan limit, Func<T> f)
    {
        var t = Task.Run(f);
        Assert.True(t.Wait(limit), "blocked: the call did not return in time");
        return t.Result;
    }

    private static long Counter(MetricsRegistry r, string group, string name)
    {
        using var d = JsonDocument.Parse(r.Snapshot(DateTimeOffset.UtcNow));
        return d.RootElement.GetProperty(group).GetProperty(name).GetInt64();
    }

    [Fact]
    public void Metrics_on_a_fifo_without_reader_neither_block_nor_stop_the_writer()
    {
        string fifo = Fifo("metrics.fifo");
        var registry = new MetricsRegistry();
        using var w = Within(TimeSpan.FromSeconds(5), () => new MetricsWriter(fifo, registry));
        // Far more than the pipe's 64 KiB: every call returns, the lines that do not fit are dropped and counted.
        int ok = Within(TimeSpan.FromSeconds(10), () => Enumerable.Range(0, 100).Count(_ => w.Flush()));
        Assert.InRange(ok, 1, 99);
        Assert.Equal(100 - ok, w.MissedMetricsCount);
        Assert.Equal(0, w.Fails); // would-block is a drop, not a failure
        Assert.Contains("os error 11", w.LastError);
        // Counters are deltas per line: the last drop shows in the next line's logger group (read here without writing).
        Assert.Equal(1, Counter(registry, "logger", "missed_metrics_count"));
    }

    [Fact]
    public void A_full_disk_fails_the_flush_with_Firecrackers_words_and_counts_it()
    {
        var registry = new MetricsRegistry();
        using var m = new MetricsOutput(registry);
        m.Configure("/dev/full");
        var e = Assert.Throws<IOException>(m.FlushOrThrow);
        Assert.Equal("Failed to write metrics: No space left on device (os error 28)", e.Message);
        m.FlushQuietly(); // the periodic flush: counted, not thrown
        Assert.Equal(2, m.Writer!.Fails);
        Assert.Equal(2, m.Writer.MissedMetricsCount);
        // Counters are deltas per line: the second failure shows in the next line (the first one was in the second).
        using var line = JsonDocument.Parse(registry.Snapshot(DateTimeOffset.UtcNow));
        Assert.Equal(1, line.RootElement.GetProperty("logger").GetProperty("metrics_fails").GetInt64());
        Assert.Equal(1, line.RootElement.GetProperty("logger").GetProperty("missed_metrics_count").GetInt64());
    }

    [Fact]
    public void Metrics_are_configured_once()
    {
        using var m = new MetricsOutput(new MetricsRegistry());
        m.Configure(Path.Combine(_dir, "m.json"));
        var e = Assert.Throws<ConfigException>(() => m.Configure(Path.Combine(_dir, "n.json")));
        Assert.Contains("Reinitialization of metrics not allowed.", e.Message);
        e = Assert.Throws<ConfigException>(() => new MetricsOutput(new MetricsRegistry()).Configure(Path.Combine(_dir, "no", "such", "dir")));
        Assert.Equal("Cannot initialize the metrics system due to bad user input: No such file or directory (os error 2)", e.Message);
    }

    [Fact]
    public void The_log_on_a_fifo_without_reader_drops_and_counts_lines()
    {
        string fifo = Fifo("log.fifo");
        var level = Logger.Level;
        try
        {
            Within(TimeSpan.FromSeconds(5), () => { Logger.Update(fifo, LogLevel.Info, null, null); return 0; });
            long missed = Logger.MissedLogCount;
            string line = new('x', 1000);
            Within(TimeSpan.FromSeconds(10), () => { for (int i = 0; i < 200; i++) Logger.Info(line); return 0; });
            Assert.InRange(Logger.MissedLogCount - missed, 1, 199); // ~64 lines fit in the pipe
            Assert.True(Counter(new MetricsRegistry(), "logger", "missed_log_count") >= Logger.MissedLogCount - missed);
        }
        finally
        {
            Logger.Update("/dev/null", level, null, null);
        }
    }

    [Fact]
    public void The_config_files_logger_and_metrics_sections_are_applied()
    {
        string log = Path.Combine(_dir, "flint.log"), metrics = Path.Combine(_dir, "metrics.json");
        var cfg = new VmConfig
        {
            Logger = new LoggerConfig { LogPath = log, Level = "Debug", ShowLevel = true },
            Metrics = new MetricsConfig { MetricsPath = metrics },
        };
        var level = Logger.Level;
        var registry = new MetricsRegistry();
        using var m = new MetricsOutput(registry);
        try
        {
            ConfigOutputs.Apply(cfg, m);
            Logger.Debug("from the config file's logger");
            Assert.Contains(":DEBUG] from the config file's logger", File.ReadAllText(log));
            Assert.NotNull(m.Writer);
            m.FlushOrThrow();
            Assert.Contains("\"utc_timestamp_ms\"", File.ReadAllText(metrics));
        }
        finally
        {
            Logger.Update("/dev/null", level, null, null);
        }
    }

    [Fact]
    public void A_bad_logger_or_metrics_path_in_the_config_file_is_a_config_error()
    {
        using var m = new MetricsOutput(new MetricsRegistry());
        var e = Assert.Throws<ConfigException>(() => ConfigOutputs.Apply(
            new VmConfig { Logger = new LoggerConfig { LogPath = "/nonexistent/dir/flint.log" } }, m));
        Assert.Equal("Logger error: Failed to open target file: No such file or directory (os error 2)", e.Message);
        e = Assert.Throws<ConfigException>(() => ConfigOutputs.Apply(
            new VmConfig { Metrics = new MetricsConfig { MetricsPath = "/nonexistent/dir/metrics" } }, m));
        Assert.Equal("Metrics error: Cannot initialize the metrics system due to bad user input: No such file or directory (os error 2)", e.Message);
    }
}
