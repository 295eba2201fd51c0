namespace Flint.Kvm;

/// <summary>The VM state ioctls of a snapshot: the in-kernel PICs and IOAPIC, the PIT and kvmclock.</summary>
// SAFETY: state ioctls get stack structs of the kernel's layout (checked by StructLayoutTests).
public sealed unsafe partial class Vm
{
    /// <summary>KVM_GET_IRQCHIP for one chip (<see cref="StateIoctls.KVM_IRQCHIP_PIC_MASTER"/>...); b is a whole kvm_irqchip.</summary>
    public void GetIrqchip(uint chipId, Span<byte> b)
    {
        Check(b.Length, StateIoctls.IrqchipSize, "KVM_GET_IRQCHIP");
        b.Clear();
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(b, chipId);
        // SAFETY: b is exactly sizeof(kvm_irqchip), the size the ioctl number encodes; pinned for the call.
        fixed (byte* p = b) Ioctl(StateIoctls.KVM_GET_IRQCHIP, p, "KVM_GET_IRQCHIP");
    }

    /// <summary>KVM_SET_IRQCHIP: the chip id is the block's first field, as KVM_GET_IRQCHIP left it.</summary>
    public void SetIrqchip(ReadOnlySpan<byte> b)
    {
        Check(b.Length, StateIoctls.IrqchipSize, "KVM_SET_IRQCHIP");
        // SAFETY: as GetIrqchip; the kernel only reads.
        fixed (byte* p = b) Ioctl(StateIoctls.KVM_SET_IRQCHIP, p, "KVM_SET_IRQCHIP");
    }

    public void GetPit2(Span<byte> b)
    {
        Check(b.Length, StateIoctls.Pit2Size, "KVM_GET_PIT2");
        // SAFETY: b is exactly sizeof(kvm_pit_state2).
        fixed (byte* p = b) Ioctl(StateIoctls.KVM_GET_PIT2, p, "KVM_GET_PIT2");
    }

    public void SetPit2(ReadOnlySpan<byte> b)
    {
        Check(b.Length, StateIoctls.Pit2Size, "KVM_SET_PIT2");
        // SAFETY: b is exactly sizeof(kvm_pit_state2); the kernel only reads.
        fixed (byte* p = b) Ioctl(StateIoctls.KVM_SET_PIT2, p, "KVM_SET_PIT2");
    }

    public void GetClock(Span<byte> b)
    {
        Check(b.Length, StateIoctls.ClockDataSize, "KVM_GET_CLOCK");
        // SAFETY: b is exactly sizeof(kvm_clock_data).
        fixed (byte* p = b) Ioctl(StateIoctls.KVM_GET_CLOCK, p, "KVM_GET_CLOCK");
    }

    public void SetClock(ReadOnlySpan<byte> b)
    {
        Check(b.Length, StateIoctls.ClockDataSize, "KVM_SET_CLOCK");
        // SAFETY: b is exactly sizeof(kvm_clock_data); the kernel only reads.
        fixed (byte* p = b) Ioctl(StateIoctls.KVM_SET_CLOCK, p, "KVM_SET_CLOCK");
    }

    private static void Check(int len, int size, string name)
    {
        if (len != size) throw new ArgumentException($"{name} needs {size} bytes, got {len}");
    }
}
