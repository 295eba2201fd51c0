using Flint.Fuzz;
using Flint.Fuzz.Targets;
using SharpFuzz;

// Flint's fuzz harness. run.sh drives it; by hand:
//   Flint.Fuzz list                              targets, one line each
//   Flint.Fuzz seeds DIR                         writes each target's seed inputs to DIR/TARGET/
//   Flint.Fuzz instrument DLL...                 SharpFuzz's in-place AFL instrumentation of the assemblies under test
//   Flint.Fuzz afl TARGET                        the AFL++ fork server (afl-fuzz starts this)
//   Flint.Fuzz replay TARGET PATH...             runs files (or every file in directories); exit 1 on a crash
//   Flint.Fuzz mutate TARGET SECONDS CORPUS [OUT] blind in-process mutation (no AFL); exit 1 on a crash, 3 on a hang
return Cli.Run(args);

internal static class Cli
{
    public static int Run(string[] args)
    {
        if (args.Length == 0) return Usage();
        switch (args[0])
        {
            case "list":
                foreach (var n in TargetRegistry.Names)
                {
                    var t = TargetRegistry.Create(n);
                    Console.WriteLine(t.IsAvailable(out string? why) ? $"{n}\t{t.Description}" : $"{n}\t(unavailable: {why})");
                }
                return 0;
            case "seeds" when args.Length == 2:
                foreach (var n in TargetRegistry.Names)
                {
                    string dir = Path.Combine(args[1], n);
                    Directory.CreateDirectory(dir);
                    foreach (var (name, data) in TargetRegistry.Create(n).Seeds()) File.WriteAllBytes(Path.Combine(dir, name + ".bin"), data);
                }
                return 0;
            case "instrument" when args.Length >= 2:
                foreach (var dll in args[1..])
                {
                    Fuzzer.Instrument(dll, type => type.StartsWith("Flint.", StringComparison.Ordinal), Options.Value);
                    Console.WriteLine($"instrumented {dll}");
                }
                return 0;
            case "afl" when args.Length == 2:
            {
                // Instrumented code may only run inside Fuzzer.Run: before it, SharpFuzz's trace map is not set up and the
                // first instrumented branch (a target's constructor) faults. So the target is made on the first input.
                string name = args[1];
                IFuzzTarget? target = null;
                var buf = new byte[1 << 20];
                Fuzzer.Run(stream =>
                {
                    if (target == null && (target = Available(name)) == null) Environment.Exit(2);
                    int n = 0, r;
                    while (n < buf.Length && (r = stream.Read(buf, n, buf.Length - n)) > 0) n += r;
                    target.Run(buf.AsSpan(0, n));
                });
                return 0;
            }
            case "replay" when args.Length >= 3:
                return Replay(args[1], args[2..]);
            case "mutate" when args.Length is 4 or 5:
                return Mutate(args[1], double.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture), args[3], args.Length == 5 ? args[4] : null);
            default:
                return Usage();
        }
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: Flint.Fuzz list | seeds DIR | instrument DLL... | afl TARGET | replay TARGET PATH... | mutate TARGET SECONDS CORPUS [OUT]");
        return 2;
    }

    private static IFuzzTarget? Available(string name)
    {
        var t = TargetRegistry.Create(name);
        if (t.IsAvailable(out string? why)) return t;
        Console.Error.WriteLine($"{name}: unavailable here: {why}");
        return null;
    }

    private static IEnumerable<string> Files(IEnumerable<string> paths) =>
        paths.SelectMany(p => Directory.Exists(p)
            ? Directory.GetFiles(p).Where(f => !Path.GetFileName(f).StartsWith('.') && !f.EndsWith(".txt", StringComparison.Ordinal)).Order()
            : File.Exists(p) ? (IEnumerable<string>)[p] : []);

    private static int Replay(string name, string[] paths)
    {
        var target = Available(name);
        if (target == null) return 2;
        int crashes = 0, n = 0;
        foreach (var f in Files(paths))
        {
            var input = File.ReadAllBytes(f);
            n++;
            try { Watchdog.Guard(input, () => target.Run(input)); }
            catch (Exception e)
            {
                crashes++;
                Console.WriteLine($"CRASH {f}: {e}");
            }
        }
        Console.WriteLine($"{name}: {n} inputs, {crashes} crashes");
        return crashes == 0 ? 0 : 1;
    }

    private static int Mutate(string name, double seconds, string corpusDir, string? outDir)
    {
        var target = Available(name);
        if (target == null) return 2;
        var corpus = Directory.Exists(corpusDir) ? Files([corpusDir]).Select(File.ReadAllBytes).ToList() : [];
        if (outDir != null) { Directory.CreateDirectory(outDir); Watchdog.HangDir = outDir; }
        var (iters, crash) = Mutator.Run(target, corpus, seconds, Environment.ProcessId);
        if (crash is { } c)
        {
            Console.WriteLine($"{name}: CRASH after {iters} iterations: {c.Error}");
            if (outDir != null) File.WriteAllBytes(Path.Combine(outDir, $"crash-{Environment.ProcessId}.bin"), c.Input);
            return 1;
        }
        Console.WriteLine($"{name}: {iters} iterations, 0 crashes");
        return 0;
    }
}
