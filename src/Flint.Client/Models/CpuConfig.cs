namespace Flint.Client.Models;

/// <summary>
/// PUT /cpu-config: a custom CPU template, bitmaps that set or clear guest-visible CPU features (swagger
/// <c>CpuConfig</c>). Pre-boot only. x86_64 uses CPUID and MSR modifiers, aarch64 register modifiers and vCPU features.
/// </summary>
public sealed record CpuConfig
{
    /// <summary>KVM capabilities to add ("121") or remove ("!121").</summary>
    public IReadOnlyList<string>? KvmCapabilities { get; init; }

    /// <summary>CPUID leaf modifiers (x86_64).</summary>
    public IReadOnlyList<CpuidLeafModifier>? CpuidModifiers { get; init; }

    /// <summary>Model-specific register modifiers (x86_64).</summary>
    public IReadOnlyList<MsrModifier>? MsrModifiers { get; init; }

    /// <summary>Register modifiers (aarch64).</summary>
    public IReadOnlyList<ArmRegisterModifier>? RegModifiers { get; init; }

    /// <summary>vCPU feature modifiers (aarch64).</summary>
    public IReadOnlyList<VcpuFeatures>? VcpuFeatures { get; init; }
}

/// <summary>Modifies one CPUID leaf and subleaf (swagger <c>CpuidLeafModifier</c>).</summary>
public sealed record CpuidLeafModifier
{
    /// <summary>Leaf index as a hex, binary or decimal string ("0x1").</summary>
    public string Leaf { get; init; } = "";

    /// <summary>Subleaf index as a hex, binary or decimal string ("0x0").</summary>
    public string Subleaf { get; init; } = "";

    /// <summary>KVM CPUID flags for this leaf and subleaf.</summary>
    public int Flags { get; init; }

    /// <summary>The register modifiers of this leaf.</summary>
    public IReadOnlyList<CpuidRegisterModifier> Modifiers { get; init; } = [];
}

/// <summary>Modifies one CPUID register (swagger <c>CpuidRegisterModifier</c>).</summary>
public sealed record CpuidRegisterModifier
{
    /// <summary>"eax", "ebx", "ecx" or "edx".</summary>
    public string Register { get; init; } = "";

    /// <summary>"0b" and 32 characters: '0' clears, '1' sets, 'x' keeps the bit.</summary>
    public string Bitmap { get; init; } = "";
}

/// <summary>Modifies one model-specific register (swagger <c>MsrModifier</c>).</summary>
public sealed record MsrModifier
{
    /// <summary>MSR address as a hex, binary or decimal string ("0x10a").</summary>
    public string Addr { get; init; } = "";

    /// <summary>"0b" and 64 characters: '0' clears, '1' sets, 'x' keeps the bit.</summary>
    public string Bitmap { get; init; } = "";
}

/// <summary>Modifies one aarch64 register (swagger <c>ArmRegisterModifier</c>).</summary>
public sealed record ArmRegisterModifier
{
    /// <summary>Register address as a hex, binary or decimal string.</summary>
    public string Addr { get; init; } = "";

    /// <summary>"0b" and up to 128 characters: '0' clears, '1' sets, 'x' keeps the bit.</summary>
    public string Bitmap { get; init; } = "";
}

/// <summary>Modifies one word of <c>kvm_vcpu_init.features</c> (aarch64; swagger <c>VcpuFeatures</c>).</summary>
public sealed record VcpuFeatures
{
    /// <summary>Index in the features array.</summary>
    public int Index { get; init; }

    /// <summary>"0b" and 32 characters: '0' clears, '1' sets, 'x' keeps the bit.</summary>
    public string Bitmap { get; init; } = "";
}
