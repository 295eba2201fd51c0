using Flint.Arch.X86;
using Flint.Devices;
using Flint.Kvm;
using Flint.Memory;
using Flint.Vmm.Config;

namespace Flint.Vmm.Builder;

/// <summary>Where a vCPU's exits go: the two buses, the VM's exit, and the shared vCPU metrics.</summary>
internal sealed record VcpuExitTargets(Bus Pio, Bus Mmio, VmExit Exit, VcpuMetrics Metrics);

public static partial class VmBuilder
{
    /// <summary>
    /// Step: the vCPUs, each with its normalised CPUID (a custom CPU template edits the host's CPUID before
    /// normalisation, as Firecracker's does). On a boot each gets the template's MSRs, the boot MSRs and its LAPIC
    /// LINT pins, and vCPU 0 the boot registers; on a restore the snapshot's state is applied later (SnapshotRestorer).
    /// </summary>
    internal static List<VcpuRunner> CreateVcpus(VmConfig config, MachineConfig mc, KvmSystem kvm, Vm vm, ICpuTemplate template,
        GuestMemory memory, LoadedKernel? kernel, VcpuExitTargets targets, List<IDisposable> owned)
    {
        uint vcpuCount = (uint)mc.VcpuCount;
        var supported = kvm.GetSupportedCpuid();
        var custom = ConfigLoader.Present(config.CpuConfig) is { } cj ? CpuTemplateConfig.Parse(cj) : StaticTemplate(mc.CpuTemplate, supported);
        foreach (int cap in custom?.RequiredKvmCapabilities ?? [])
            if (kvm.CheckExtension(cap) <= 0) throw new ConfigException($"cpu-config: this host's KVM lacks capability {cap}.");
        if (custom != null)
        {
            var edited = supported.ToList();
            custom.ApplyCpuid(edited);
            supported = [.. edited];
        }
        var runners = new List<VcpuRunner>();
        for (uint id = 0; id < vcpuCount; id++)
        {
            var vcpu = vm.CreateVcpu(id);
            owned.Add(vcpu);
            var cpuid = CpuidNormalizer.Normalize(supported, id, vcpuCount, mc.Smt).ToList();
            template.Apply(cpuid);
            vcpu.SetCpuid2(cpuid.ToArray());
            if (kernel != null) ConfigureBootVcpu(vcpu, id, template, custom, memory, kernel);
            runners.Add(new VcpuRunner(vcpu, targets.Pio, targets.Mmio, targets.Exit, targets.Metrics));
        }
        return runners;
    }

    /// <summary>A booting vCPU's MSRs and LAPIC; vCPU 0 also gets the boot tables and the boot protocol's registers.</summary>
    private static void ConfigureBootVcpu(Vcpu vcpu, uint id, ICpuTemplate template, CustomCpuTemplate? custom, GuestMemory memory,
        LoadedKernel kernel)
    {
        if (custom is { Msrs.Count: > 0 })
        {
            // The template's bits go on the vCPU's current values; the boot-protocol MSRs are written after.
            var current = custom.Msrs.Select(m => new KvmMsrEntry { Index = m.Address }).ToArray();
            int read = vcpu.GetMsrs(current);
            if (read != current.Length) throw new ConfigException($"cpu-config: KVM cannot read MSR 0x{current[read].Index:x}.");
            var values = current.ToDictionary(m => m.Index, m => m.Data);
            var edits = custom.MsrEntries(a => values[a]);
            int wrote = vcpu.SetMsrs(edits);
            if (wrote != edits.Length) throw new ConfigException($"cpu-config: KVM refused MSR 0x{edits[wrote].Index:x}.");
        }
        var msrs = BootCpuState.BootMsrs().Where(m => !template.SkipMsr(m.Index)).ToArray();
        int set = vcpu.SetMsrs(msrs);
        if (set != msrs.Length)
            throw new InvalidOperationException($"KVM_SET_MSRS accepted {set} of {msrs.Length} boot MSRs (first rejected: 0x{msrs[set].Index:x})");
        var lapic = vcpu.GetLapic();
        Lapic.ConfigureLint(ref lapic);
        vcpu.SetLapic(lapic);
        if (id == 0)
        {
            BootCpuState.WriteTables(memory, kernel.Kind);
            vcpu.SetRegs(BootCpuState.Regs(kernel));
            vcpu.SetSregs(BootCpuState.Sregs(vcpu.GetSregs(), kernel.Kind));
            vcpu.SetFpu(BootCpuState.Fpu());
        }
    }
}
