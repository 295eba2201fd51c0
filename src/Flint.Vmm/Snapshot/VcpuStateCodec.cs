using System.Runtime.InteropServices;
using Flint.Kvm;
using Flint.Snapshot;
using Flint.Vmm.Logging;

namespace Flint.Vmm.Snapshot;

/// <summary>
/// One vCPU's KVM state to and from a snapshot section. The save order and the restore order are Firecracker's
/// (vstate/vcpu, from QEMU's experience): MP state first on save (reading it may change the LAPIC), vCPU events last;
/// on restore CPUID, MP state, REGS before SREGS (SREGS holds the APIC base the LAPIC needs), FPU/XSAVE, XCRs, debug
/// registers, LAPIC before MSRs (the TSC deadline needs the LAPIC), and events last (SET_REGS clears pending exceptions).
/// </summary>
public static class VcpuStateCodec
{
    private const int MaxCpuid = KvmSystem.MaxCpuidEntries, MaxMsrs = 4096, MaxXsave = 1 << 20;

    /// <summary>Runs on the parked vCPU thread (its filter allows these GETs).</summary>
    public static void Save(Vcpu vcpu, KvmSnapshotCaps caps, StateWriter w)
    {
        w.U32(vcpu.Id);
        w.U32(vcpu.GetMpState());
        var regs = vcpu.GetRegs();
        w.Raw(MemoryMarshal.AsBytes(new ReadOnlySpan<KvmRegs>(in regs)));
        var sregs = vcpu.GetSregs();
        w.Raw(MemoryMarshal.AsBytes(new ReadOnlySpan<KvmSregs>(in sregs)));
        var fpu = vcpu.GetFpu();
        w.Raw(MemoryMarshal.AsBytes(new ReadOnlySpan<KvmFpu>(in fpu)));
        if (caps.XsaveSize > 0)
        {
            var x = new byte[caps.XsaveSize];
            vcpu.GetXsave(x);
            w.Bytes(x);
        }
        else w.Bytes([]);
        Optional(w, caps.HasXcrs, StateIoctls.XcrsSize, vcpu.GetXcrs);
        Optional(w, caps.HasDebugRegs, StateIoctls.DebugRegsSize, vcpu.GetDebugRegs);
        var lapic = vcpu.GetLapic();
        w.Raw(MemoryMarshal.AsBytes(new ReadOnlySpan<KvmLapicState>(in lapic)));
        uint khz = 0;
        try { khz = vcpu.GetTscKhz(); }
        catch (KvmException) { Logger.Warn("TSC freq not available. Snapshot cannot be loaded on a different CPU model."); }
        w.U32(khz);
        var cpuid = vcpu.GetCpuid2();
        w.U32((uint)cpuid.Length);
        w.Raw(MemoryMarshal.AsBytes(cpuid.AsSpan()));
        var msrs = ReadMsrs(vcpu, caps.MsrsToSave);
        w.U32((uint)msrs.Length);
        foreach (var m in msrs) { w.U32(m.Index); w.U64(m.Data); }
        Optional(w, caps.HasVcpuEvents, StateIoctls.VcpuEventsSize, vcpu.GetVcpuEvents);
    }

    private delegate void Getter(Span<byte> b);

    private static void Optional(StateWriter w, bool has, int size, Getter get)
    {
        w.Bool(has);
        if (!has) return;
        var b = new byte[size];
        get(b);
        w.Raw(b);
    }

    /// <summary>KVM_GET_MSRS stops at the first MSR it cannot read: that one is dropped and the rest read again.</summary>
    private static KvmMsrEntry[] ReadMsrs(Vcpu vcpu, uint[] indices)
    {
        var list = indices.Select(i => new KvmMsrEntry { Index = i }).ToList();
        for (int attempt = 0; attempt <= indices.Length; attempt++)
        {
            var arr = list.ToArray();
            int n = vcpu.GetMsrs(arr);
            if (n >= arr.Length) return arr;
            Logger.Debug($"MSR 0x{arr[n].Index:x} cannot be read on this host; not saved");
            list.RemoveAt(n);
        }
        return [];
    }

    /// <summary>The id the section holds (checked against the vCPU it is restored on).</summary>
    public static void Restore(Vcpu vcpu, StateReader r)
    {
        uint id = r.U32();
        if (id != vcpu.Id) throw new SnapshotFormatException($"Section {r.Section} holds vCPU {id}, expected {vcpu.Id}.");
        uint mp = r.U32();
        var regs = ReadStruct<KvmRegs>(r);
        var sregs = ReadStruct<KvmSregs>(r);
        var fpu = ReadStruct<KvmFpu>(r);
        byte[] xsave = r.Bytes(MaxXsave);
        byte[]? xcrs = r.Bool() ? Raw(r, StateIoctls.XcrsSize) : null;
        byte[]? dbg = r.Bool() ? Raw(r, StateIoctls.DebugRegsSize) : null;
        var lapic = ReadStruct<KvmLapicState>(r);
        uint khz = r.U32();
        int nCpuid = r.Count(MaxCpuid);
        var cpuid = new KvmCpuidEntry2[nCpuid];
        r.Raw(MemoryMarshal.AsBytes(cpuid.AsSpan()));
        int nMsrs = r.Count(MaxMsrs);
        var msrs = new KvmMsrEntry[nMsrs];
        for (int i = 0; i < nMsrs; i++) msrs[i] = new KvmMsrEntry { Index = r.U32(), Data = r.U64() };
        byte[]? events = r.Bool() ? Raw(r, StateIoctls.VcpuEventsSize) : null;
        r.ExpectEnd();
        if (xsave.Length != 0 && xsave.Length < StateIoctls.XsaveSize)
            throw new SnapshotFormatException($"Section {r.Section} holds an XSAVE area of {xsave.Length} bytes.");

        // The TSC frequency first: the guest's clocks were calibrated to it (Firecracker scales only when it differs).
        if (khz != 0)
        {
            uint here = 0;
            try { here = vcpu.GetTscKhz(); } catch (KvmException) { }
            if (here != khz) vcpu.SetTscKhz(khz);
        }
        if (nCpuid > 0) vcpu.SetCpuid2(cpuid);
        vcpu.SetMpState(mp);
        vcpu.SetRegs(regs);
        vcpu.SetSregs(sregs);
        vcpu.SetFpu(fpu);
        if (xsave.Length != 0) vcpu.SetXsave(xsave);
        if (xcrs != null) vcpu.SetXcrs(xcrs);
        if (dbg != null) vcpu.SetDebugRegs(dbg);
        vcpu.SetLapic(lapic);
        if (nMsrs > 0)
        {
            int set = vcpu.SetMsrs(msrs);
            if (set != nMsrs) throw new InvalidOperationException($"KVM_SET_MSRS accepted {set} of {nMsrs} MSRs (first rejected: 0x{msrs[set].Index:x})");
        }
        if (events != null) vcpu.SetVcpuEvents(events);
    }

    private static byte[] Raw(StateReader r, int n)
    {
        var b = new byte[n];
        r.Raw(b);
        return b;
    }

    private static T ReadStruct<T>(StateReader r) where T : unmanaged
    {
        T v = default;
        r.Raw(MemoryMarshal.AsBytes(new Span<T>(ref v)));
        return v;
    }
}
