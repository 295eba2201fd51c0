using Flint.Kvm;

namespace Flint.Arch.X86;

/// <summary>No template: the normalised host CPUID as is.</summary>
public sealed class NoneTemplate : ICpuTemplate
{
    public static readonly NoneTemplate Instance = new();
    private NoneTemplate() { }
    public string Name => "None";
    public void Apply(List<KvmCpuidEntry2> entries) { }
    public string ExtraKernelCmdline => "";
    public bool SkipMsr(uint index) => false;
}
