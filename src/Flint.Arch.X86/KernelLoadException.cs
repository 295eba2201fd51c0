namespace Flint.Arch.X86;

/// <summary>A kernel image that cannot be booted: the message names the file and the problem.</summary>
public sealed class KernelLoadException(string path, string problem)
    : Exception($"kernel image '{path}': {problem}")
{
    public string Path { get; } = path;
    public string Problem { get; } = problem;
}

/// <summary>An initrd that cannot be placed or read: the message names the file and the problem.</summary>
public sealed class InitrdLoadException(string path, string problem)
    : Exception($"initrd '{path}': {problem}")
{
    public string Path { get; } = path;
    public string Problem { get; } = problem;
}
