namespace Flint.Fuzz;

/// <summary>
/// One fuzz target: a parser or device fed one input per call. <see cref="Run"/> throws only on a finding; each
/// target catches the exception types its code documents as "bad input" itself, so anything that escapes is a
/// crash by definition (the AFL fork server and the in-process mutator both report it as one).
/// </summary>
public interface IFuzzTarget
{
    string Name { get; }

    /// <summary>One line for `list` and docs/fuzzing.md: what is fed where, and what counts as bad input.</summary>
    string Description { get; }

    /// <summary>False (with a reason) when this host cannot run it, e.g. no /dev/net/tun for virtio-net.</summary>
    bool IsAvailable(out string? reason);

    void Run(ReadOnlySpan<byte> input);

    /// <summary>A few valid inputs, written to tests/fuzz/corpus/NAME/ by `seeds` and used as AFL's starting corpus.</summary>
    IEnumerable<(string Name, byte[] Data)> Seeds();
}

/// <summary>A finding that is not an exception of the code under test: a broken invariant the target checked.</summary>
public sealed class FuzzInvariantException(string message) : Exception(message);
