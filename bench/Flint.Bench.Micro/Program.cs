using System.Text.Json;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace Flint.Bench.Micro;

/// <summary>
/// `Flint.Bench.Micro [--smoke] [--out micro.json] [--artifacts DIR]`: runs every benchmark with the short-run job
/// (or a 1 warm-up + 2 iteration smoke job) on the in-process toolchain, prints BenchmarkDotNet's summary and
/// writes the figures bench/run's report reads.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        string? Arg(string name) { int i = Array.IndexOf(args, name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : null; }
        bool smoke = args.Contains("--smoke");
        string outPath = Arg("--out") ?? "artifacts/bench/micro.json";
        string artifacts = Arg("--artifacts") ?? "artifacts/bench/BenchmarkDotNet.Artifacts";

        var job = smoke
            ? Job.Dry.WithWarmupCount(1).WithIterationCount(2).WithInvocationCount(2048).WithUnrollFactor(16).WithId("Smoke")
            : Job.ShortRun;
        var config = ManualConfig.CreateEmpty()
            .AddJob(job.WithToolchain(InProcessEmitToolchain.Instance))
            .AddDiagnoser(MemoryDiagnoser.Default)
            .AddColumnProvider(DefaultColumnProviders.Instance)
            .AddLogger(ConsoleLogger.Default)
            .WithArtifactsPath(artifacts)
            .WithOptions(ConfigOptions.DisableLogFile);

        var summaries = BenchmarkRunner.Run(new[] { typeof(ApiBenchmarks), typeof(DeviceBenchmarks) }, config);
        var results = new List<object>();
        int failed = 0;
        foreach (var s in summaries)
            foreach (var r in s.Reports)
            {
                var st = r.ResultStatistics;
                if (st == null) { failed++; continue; }
                results.Add(new
                {
                    Name = $"{r.BenchmarkCase.Descriptor.Type.Name}.{r.BenchmarkCase.Descriptor.WorkloadMethod.Name}",
                    Description = r.BenchmarkCase.Descriptor.WorkloadMethodDisplayInfo,
                    MeanNs = st.Mean,
                    MedianNs = st.Median,
                    MinNs = st.Min,
                    MaxNs = st.Max,
                    StdDevNs = st.N > 1 ? st.StandardDeviation : 0,
                    AllocatedBytesPerOp = r.GcStats.GetBytesAllocatedPerOperation(r.BenchmarkCase),
                    Iterations = st.N,
                });
            }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outPath))!);
        File.WriteAllText(outPath, JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"micro: {results.Count} benchmarks -> {outPath}" + (failed > 0 ? $" ({failed} failed)" : ""));
        return failed > 0 || results.Count == 0 ? 1 : 0;
    }
}
