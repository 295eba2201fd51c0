namespace Flint.Fuzz.Targets;

/// <summary>
/// Not part of the campaign: proves the plumbing reports findings. Input starting with '!' throws, "!!" hangs, so
/// `FUZZ_TARGETS=selftest tests/fuzz/run.sh --ci` must exit non-zero (and AFL must save a crash) within seconds.
/// </summary>
public sealed class SelfTestTarget : IFuzzTarget
{
    public string Name => "selftest";
    public string Description => "fails on purpose: '!' throws, \"!!\" hangs (checks that run.sh reports findings)";

    public bool IsAvailable(out string? reason) { reason = null; return true; }

    public void Run(ReadOnlySpan<byte> input)
    {
        if (input.Length >= 2 && input[0] == '!' && input[1] == '!') Thread.Sleep(Timeout.Infinite);
        if (input.Length >= 1 && input[0] == '!') throw new IndexOutOfRangeException("selftest: deliberate crash");
    }

    public IEnumerable<(string, byte[])> Seeds() { yield return ("plain", "?"u8.ToArray()); }
}
