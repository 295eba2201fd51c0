namespace Flint;

/// <summary>
/// One command-line argument as Firecracker's arg parser declares it: `--name` alone (a switch) or `--name VALUE`
/// (two words: Firecracker has no `--name=VALUE` form). <see cref="Name"/> has no leading dashes, as in Firecracker's
/// messages ("The argument 'api-sock' was provided more than once.").
/// </summary>
public sealed record Flag(string Name, bool TakesValue, string Help, string? Default = null)
{
    /// <summary>Another flag that must be given too when this one is (Firecracker: `--no-api` requires `--config-file`).</summary>
    public string? Requires { get; init; }

    /// <summary>Flags that may not be given together with this one (`--no-seccomp` and `--seccomp-filter`).</summary>
    public IReadOnlyList<string> Forbids { get; init; } = [];

    /// <summary>The name column of `--help`: "  --name &lt;name&gt;" or "  --name".</summary>
    public string HelpName => TakesValue ? $"  --{Name} <{Name}>" : $"  --{Name}";

    /// <summary>The text column of `--help`; a default is shown quoted, as Firecracker does.</summary>
    public string HelpText => Default == null ? Help : $"{Help} [default: \"{Default}\"]";
}
