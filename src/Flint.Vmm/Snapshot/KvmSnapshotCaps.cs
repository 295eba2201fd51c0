using Flint.Kvm;

namespace Flint.Vmm.Snapshot;

/// <summary>
/// What the host's KVM can save, probed once at build time on the main thread (the /dev/kvm ioctls behind it are not
/// in any role filter): the MSRs to save, the XSAVE buffer size, and whether XCRs and debug registers can be read.
/// </summary>
public sealed record KvmSnapshotCaps(uint[] MsrsToSave, int XsaveSize, bool HasXcrs, bool HasDebugRegs, bool HasVcpuEvents)
{
    public static readonly KvmSnapshotCaps None = new([], 0, false, false, false);

    public static KvmSnapshotCaps Probe(KvmSystem kvm)
    {
        uint[] msrs;
        try { msrs = MsrsToSaveList.Filter(kvm.GetMsrIndexList()); }
        catch (KvmException) { msrs = MsrsToSaveList.Filter([]); }
        int xsave = 0;
        if (kvm.CheckExtension(StateIoctls.KVM_CAP_XSAVE) > 0)
        {
            // KVM_CAP_XSAVE2 answers the buffer size KVM_GET_XSAVE2 needs (larger than 4 KiB with AMX).
            int x2 = kvm.CheckExtension(StateIoctls.KVM_CAP_XSAVE2);
            xsave = Math.Max(StateIoctls.XsaveSize, x2);
        }
        return new KvmSnapshotCaps(msrs, xsave,
            kvm.CheckExtension(StateIoctls.KVM_CAP_XCRS) > 0,
            kvm.CheckExtension(StateIoctls.KVM_CAP_DEBUGREGS) > 0,
            kvm.CheckExtension(StateIoctls.KVM_CAP_VCPU_EVENTS) > 0);
    }
}
