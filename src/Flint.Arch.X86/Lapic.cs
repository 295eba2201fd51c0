using System.Buffers.Binary;
using Flint.Kvm;

namespace Flint.Arch.X86;

/// <summary>
/// Local APIC boot setup: LINT0 in ExtINT mode so the 8259 PIC's interrupts reach the CPU (virtual-wire mode,
/// what the MP table announces) and LINT1 as NMI, as PC firmware leaves them.
/// </summary>
// SAFETY: the only pointer is to the LAPIC state's fixed register array, pinned with fixed and read within its 1024 bytes.
public static unsafe class Lapic
{
    public const int LvtLint0Offset = 0x350;
    public const int LvtLint1Offset = 0x360;
    public const uint DeliveryModeMask = 0x700;
    public const uint DeliveryModeNmi = 4;
    public const uint DeliveryModeExtInt = 7;

    /// <summary>Sets the delivery modes of LVT LINT0/LINT1 in a KVM_GET_LAPIC image, keeping all other bits.</summary>
    public static void ConfigureLint(ref KvmLapicState s)
    {
        fixed (byte* p = s.Regs)
        {
            var regs = new Span<byte>(p, 1024);
            SetMode(regs, LvtLint0Offset, DeliveryModeExtInt);
            SetMode(regs, LvtLint1Offset, DeliveryModeNmi);
        }
    }

    private static void SetMode(Span<byte> regs, int offset, uint mode)
    {
        uint v = BinaryPrimitives.ReadUInt32LittleEndian(regs[offset..]);
        BinaryPrimitives.WriteUInt32LittleEndian(regs[offset..], (v & ~DeliveryModeMask) | (mode << 8));
    }
}
