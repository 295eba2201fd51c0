namespace Flint.Arch.X86;

/// <summary>The built-in CPU templates, by name, and the one a host needs by default.</summary>
public static class CpuTemplates
{
    public static ICpuTemplate None => NoneTemplate.Instance;
    public static ICpuTemplate KvmPvm => KvmPvmTemplate.Instance;

    /// <summary>"None" or "KvmPvm" (case-insensitive); null for an unknown name.</summary>
    public static ICpuTemplate? ByName(string name) =>
        string.Equals(name, "None", StringComparison.OrdinalIgnoreCase) ? None
        : string.Equals(name, "KvmPvm", StringComparison.OrdinalIgnoreCase) ? KvmPvm
        : null;

    /// <summary>KvmPvm on a kvm_pvm host (Flint.Kvm.KvmSystem.IsKvmPvmHost()), else None.</summary>
    public static ICpuTemplate Detect(bool isKvmPvmHost) => isKvmPvmHost ? KvmPvm : None;
}
