namespace Flint.Arch.X86;

/// <summary>
/// Firecracker's x86_64 static CPU templates (machine-config "cpu_template": C3, T2, T2S, T2CL, T2A), with its
/// semantics: each is a fixed custom template (CPUID and MSR bit modifiers, <see cref="StaticCpuTemplateData"/>)
/// applied as a PUT /cpu-config template is, and each is only for the CPU vendor and models Firecracker lists
/// (static_cpu_templates/mod.rs, cpu_model.rs); anything else is refused at start with Firecracker's text.
/// </summary>
public static class StaticCpuTemplates
{
    public const string VendorIntel = "GenuineIntel";
    public const string VendorAmd = "AuthenticAMD";

    /// <summary>Firecracker's GetCpuTemplateError::CpuVendorMismatched.</summary>
    public const string VendorMismatch = "CPU vendor mismatched between actual CPU and CPU template.";
    /// <summary>Firecracker's GetCpuTemplateError::InvalidCpuModel.</summary>
    public const string ModelNotPermitted = "The current CPU model is not permitted to apply the CPU template.";

    // CPUID.1:EAX of the models Firecracker names (its *_FMS constants), without the processor type and reserved bits.
    private const uint Skylake = 0x00050654, CascadeLake = 0x00050657, IceLake = 0x000606a6, Milan = 0x00a00f11;
    private const uint FamilyModelSteppingMask = 0x0fff0fff;

    /// <summary>The template named <paramref name="name"/> (case-sensitive, as serde reads it); null for "None" or an unknown name.</summary>
    public static CustomCpuTemplate? ByName(string? name) => name switch
    {
        "C3" => Build(StaticCpuTemplateData.C3Cpuid, StaticCpuTemplateData.C3Msrs),
        "T2" => Build(StaticCpuTemplateData.T2Cpuid, StaticCpuTemplateData.T2Msrs),
        "T2S" => Build(StaticCpuTemplateData.T2SCpuid, StaticCpuTemplateData.T2SMsrs),
        "T2CL" => Build(StaticCpuTemplateData.T2CLCpuid, StaticCpuTemplateData.T2CLMsrs),
        "T2A" => Build(StaticCpuTemplateData.T2ACpuid, StaticCpuTemplateData.T2AMsrs),
        _ => null,
    };

    /// <summary>The vendor ID a template is for (Intel for C3, T2, T2S, T2CL; AMD for T2A).</summary>
    public static string SupportedVendor(string name) => name == "T2A" ? VendorAmd : VendorIntel;

    /// <summary>
    /// Why template <paramref name="name"/> cannot be used on a host whose CPUID vendor is <paramref name="vendorId"/>
    /// and whose CPUID.1:EAX is <paramref name="leaf1Eax"/> (Firecracker's get_cpu_template checks, in its order);
    /// null when it can.
    /// </summary>
    public static string? HostError(string name, string vendorId, uint leaf1Eax)
    {
        if (vendorId != SupportedVendor(name)) return VendorMismatch;
        uint[] models = name switch
        {
            "C3" or "T2" => [Skylake, CascadeLake, IceLake],
            "T2S" => [Skylake, CascadeLake],
            "T2CL" => [CascadeLake, IceLake],
            "T2A" => [Milan],
            _ => [],
        };
        return Array.IndexOf(models, leaf1Eax & FamilyModelSteppingMask) >= 0 ? null : ModelNotPermitted;
    }

    /// <summary>The 12-character vendor ID from CPUID leaf 0 (EBX, EDX, ECX).</summary>
    public static string VendorId(uint ebx, uint edx, uint ecx)
    {
        Span<byte> b = stackalloc byte[12];
        BitConverter.TryWriteBytes(b, ebx);
        BitConverter.TryWriteBytes(b[4..], edx);
        BitConverter.TryWriteBytes(b[8..], ecx);
        return System.Text.Encoding.ASCII.GetString(b);
    }

    private static CustomCpuTemplate Build((uint Leaf, uint Subleaf, uint Flags, CpuidRegister Register, string Bitmap)[] cpuid,
        (uint Address, string Bitmap)[] msrs) => new()
        {
            Cpuid = [.. cpuid.GroupBy(r => (r.Leaf, r.Subleaf, r.Flags)).Select(g => new CpuidLeafModifier(g.Key.Leaf, g.Key.Subleaf, g.Key.Flags,
            [.. g.Select(r => (r.Register, BitModifier.Parse(r.Bitmap, 32)))]))],
            Msrs = [.. msrs.Select(m => new MsrModifier(m.Address, BitModifier.Parse(m.Bitmap, 64)))],
        };
}
