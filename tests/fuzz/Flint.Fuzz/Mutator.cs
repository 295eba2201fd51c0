using System.Diagnostics;

namespace Flint.Fuzz;

/// <summary>
/// The fallback when AFL++ is not installed: blind havoc-style mutation of the seed corpus in-process (bit flips,
/// interesting values, byte runs, splices), no coverage feedback. Good enough to catch regressions on a CI host;
/// the real campaign is AFL++'s.
/// </summary>
public sealed class Mutator(Random rng)
{
    private static readonly long[] Interesting = [0, 1, -1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, int.MaxValue, int.MinValue, uint.MaxValue, long.MaxValue];

    public byte[] Mutate(byte[] seed, byte[] other)
    {
        var b = new List<byte>(seed);
        int n = 1 + rng.Next(8);
        for (int i = 0; i < n; i++)
        {
            if (b.Count == 0) { b.Add((byte)rng.Next(256)); continue; }
            int at = rng.Next(b.Count);
            switch (rng.Next(7))
            {
                case 0: b[at] ^= (byte)(1 << rng.Next(8)); break;
                case 1: b[at] = (byte)rng.Next(256); break;
                case 2:
                {
                    long v = Interesting[rng.Next(Interesting.Length)];
                    int w = 1 << rng.Next(4);
                    for (int k = 0; k < w && at + k < b.Count; k++) b[at + k] = (byte)(v >> (8 * k));
                    break;
                }
                case 3: b.RemoveRange(at, Math.Min(b.Count - at, 1 + rng.Next(16))); break;
                case 4: b.InsertRange(at, Enumerable.Repeat((byte)rng.Next(256), 1 + rng.Next(32))); break;
                case 5:
                    if (other.Length > 0)
                    {
                        int from = rng.Next(other.Length), len = Math.Min(other.Length - from, 1 + rng.Next(64));
                        b.InsertRange(at, other.AsSpan(from, len).ToArray());
                    }
                    break;
                default: b[at] = (byte)(b[at] + rng.Next(-35, 36)); break;
            }
        }
        return b.ToArray();
    }

    /// <summary>Runs mutants of <paramref name="corpus"/> for <paramref name="seconds"/>; returns (iterations, the first crash or null).</summary>
    public static (long Iterations, (byte[] Input, Exception Error)? Crash) Run(IFuzzTarget target, List<byte[]> corpus, double seconds, int seed)
    {
        var m = new Mutator(new Random(seed));
        var sw = Stopwatch.StartNew();
        long iters = 0;
        if (corpus.Count == 0) corpus.Add([]);
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            for (int k = 0; k < 256; k++)
            {
                var input = iters < corpus.Count ? corpus[(int)iters] : m.Mutate(corpus[m.Next(corpus.Count)], corpus[m.Next(corpus.Count)]);
                iters++;
                try { Watchdog.Guard(input, () => target.Run(input)); }
                catch (Exception e) { return (iters, (input, e)); }
            }
        }
        return (iters, null);
    }

    private int Next(int max) => rng.Next(max);
}
