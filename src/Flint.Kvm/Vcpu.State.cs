using Flint.Sys;

namespace Flint.Kvm;

/// <summary>The vCPU state ioctls of a snapshot: each state block copied to or from a caller's buffer of its exact size.</summary>
// SAFETY: state ioctls get stack structs of the kernel's layout (checked by StructLayoutTests) or native buffers of declared size.
public sealed unsafe partial class Vcpu
{
    public void GetVcpuEvents(Span<byte> b) => Get(StateIoctls.KVM_GET_VCPU_EVENTS, b, StateIoctls.VcpuEventsSize, "KVM_GET_VCPU_EVENTS");
    public void SetVcpuEvents(ReadOnlySpan<byte> b) => Set(StateIoctls.KVM_SET_VCPU_EVENTS, b, StateIoctls.VcpuEventsSize, "KVM_SET_VCPU_EVENTS");
    public void GetDebugRegs(Span<byte> b) => Get(StateIoctls.KVM_GET_DEBUGREGS, b, StateIoctls.DebugRegsSize, "KVM_GET_DEBUGREGS");
    public void SetDebugRegs(ReadOnlySpan<byte> b) => Set(StateIoctls.KVM_SET_DEBUGREGS, b, StateIoctls.DebugRegsSize, "KVM_SET_DEBUGREGS");
    public void GetXcrs(Span<byte> b) => Get(StateIoctls.KVM_GET_XCRS, b, StateIoctls.XcrsSize, "KVM_GET_XCRS");
    public void SetXcrs(ReadOnlySpan<byte> b) => Set(StateIoctls.KVM_SET_XCRS, b, StateIoctls.XcrsSize, "KVM_SET_XCRS");

    /// <summary>
    /// KVM_GET_XSAVE into a buffer of 4096 bytes, or KVM_GET_XSAVE2 into a larger one (the size KVM_CHECK_EXTENSION
    /// (KVM_CAP_XSAVE2) reported: AMX state does not fit in 4 KiB).
    /// </summary>
    public void GetXsave(Span<byte> b)
    {
        if (b.Length < StateIoctls.XsaveSize) throw new ArgumentException($"KVM_GET_XSAVE needs {StateIoctls.XsaveSize} bytes");
        // SAFETY: the kernel writes at most b.Length bytes: 4096 for KVM_GET_XSAVE, and for KVM_GET_XSAVE2 the size the
        // caller got from KVM_CAP_XSAVE2, which is the buffer's length.
        fixed (byte* p = b) Ioctl(b.Length == StateIoctls.XsaveSize ? StateIoctls.KVM_GET_XSAVE : StateIoctls.KVM_GET_XSAVE2, p, "KVM_GET_XSAVE");
    }

    /// <summary>KVM_SET_XSAVE; the kernel reads as many bytes as its own xsave size (at least 4096), which is the buffer's.</summary>
    public void SetXsave(ReadOnlySpan<byte> b)
    {
        if (b.Length < StateIoctls.XsaveSize) throw new ArgumentException($"KVM_SET_XSAVE needs {StateIoctls.XsaveSize} bytes");
        // SAFETY: the buffer is pinned for the call and at least as long as the kernel reads (checked above).
        fixed (byte* p = b) Ioctl(StateIoctls.KVM_SET_XSAVE, p, "KVM_SET_XSAVE");
    }

    public uint GetMpState() { uint s; Ioctl(Ioctls.KVM_GET_MP_STATE, &s, "KVM_GET_MP_STATE"); return s; }
    public void SetMpState(uint s) => Ioctl(Ioctls.KVM_SET_MP_STATE, &s, "KVM_SET_MP_STATE");

    /// <summary>The guest's TSC frequency in kHz (KVM_GET_TSC_KHZ).</summary>
    public uint GetTscKhz() => (uint)IoctlVal(Ioctls.KVM_GET_TSC_KHZ, 0, "KVM_GET_TSC_KHZ");
    public void SetTscKhz(uint khz) => IoctlVal(StateIoctls.KVM_SET_TSC_KHZ, khz, "KVM_SET_TSC_KHZ");

    /// <summary>The CPUID entries the vCPU was given (KVM_GET_CPUID2).</summary>
    public KvmCpuidEntry2[] GetCpuid2()
    {
        using var buf = new CpuidBuffer(KvmSystem.MaxCpuidEntries);
        Ioctl(Ioctls.KVM_GET_CPUID2, buf.Pointer, "KVM_GET_CPUID2");
        return buf.ToArray();
    }

    private void Get(nuint request, Span<byte> b, int size, string name)
    {
        if (b.Length != size) throw new ArgumentException($"{name} needs {size} bytes, got {b.Length}");
        // SAFETY: the ioctl number encodes `size`, the kernel writes exactly that many bytes, and b is that long.
        fixed (byte* p = b) Ioctl(request, p, name);
    }

    private void Set(nuint request, ReadOnlySpan<byte> b, int size, string name)
    {
        if (b.Length != size) throw new ArgumentException($"{name} needs {size} bytes, got {b.Length}");
        // SAFETY: as Get; the kernel only reads.
        fixed (byte* p = b) Ioctl(request, p, name);
    }
}
