namespace Flint.Vmm.Config;

/// <summary>Bad configuration: the VMM refuses it before creating anything (exit 152 from the CLI, 400 from the API).</summary>
public sealed class ConfigException(string message) : Exception(message);
