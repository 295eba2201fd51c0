using Flint.Arch.X86;
using Flint.Kvm;
using Flint.Memory;
using Flint.Vmm.Logging;

namespace Flint.Vmm.Builder;

public static partial class VmBuilder
{
    /// <summary>
    /// Step: /dev/kvm, the CPU template (detected once KVM opened), the VM with guest RAM in its memory slots, the TSS
    /// and identity-map pages, the in-kernel irqchip and the PIT.
    /// </summary>
    // SAFETY: region.Host is only passed on to KVM as the address of a mapping that outlives the VM; nothing is dereferenced.
    internal static unsafe (KvmSystem Kvm, Vm Vm, ICpuTemplate Template) CreateVm(VmOptions options, GuestMemory memory, bool trackDirtyPages,
        ICpuTemplate? forcedTemplate, List<IDisposable> owned)
    {
        var kvm = KvmSystem.Open(options.KvmPath);
        owned.Add(kvm);
        var template = ResolveTemplate(forcedTemplate);
        var vm = kvm.CreateVm();
        owned.Add(vm);
        // The unsafe context is only for region.Host, a pointer passed on as an address (never dereferenced here).
        foreach (var (slot, region) in memory.Regions.Select((r, i) => ((uint)i, r)))
            vm.SetUserMemoryRegion(slot, region.GuestBase, region.Size, (nint)region.Host, trackDirtyPages);
        vm.SetTssAddress(Layout.TssAddress);
        // Only VMX needs the identity map page; elsewhere (SVM, kvm_pvm) the call may be refused, harmlessly.
        try { vm.SetIdentityMapAddress(Layout.IdentityMapAddress); }
        catch (KvmException e) { Logger.Debug($"Identity map address not set: {e.Message}"); }
        vm.CreateIrqchip();
        vm.CreatePit2();
        return (kvm, vm, template);
    }
}
