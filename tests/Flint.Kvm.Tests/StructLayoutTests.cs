using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Flint.Kvm;

namespace Flint.Kvm.Tests;

/// <summary>Sizes and offsets from &lt;linux/kvm.h&gt; and &lt;asm/kvm.h&gt; (x86_64); a mismatch would corrupt ioctl arguments.</summary>
public unsafe class StructLayoutTests
{
    [Theory]
    [InlineData(typeof(KvmRegs), 144)]
    [InlineData(typeof(KvmSegment), 24)]
    [InlineData(typeof(KvmDtable), 16)]
    [InlineData(typeof(KvmSregs), 312)]
    [InlineData(typeof(KvmFpu), 416)]
    [InlineData(typeof(KvmMsrEntry), 16)]
    [InlineData(typeof(KvmCpuidEntry2), 40)]
    [InlineData(typeof(KvmUserspaceMemoryRegion), 32)]
    [InlineData(typeof(KvmPitConfig), 64)]
    [InlineData(typeof(KvmIrqfd), 32)]
    [InlineData(typeof(KvmIoeventfd), 64)]
    [InlineData(typeof(KvmIrqLevel), 8)]
    [InlineData(typeof(KvmLapicState), 1024)]
    [InlineData(typeof(KvmDirtyLog), 16)]
    [InlineData(typeof(KvmIrqRoutingHeader), 8)]
    [InlineData(typeof(KvmIrqRoutingEntry), 48)]
    public void Size_matches_kernel_header(Type t, int size) => Assert.Equal(size, Marshal.SizeOf(t));

    [Fact]
    public void Sregs_field_offsets()
    {
        Assert.Equal(192, (int)Marshal.OffsetOf<KvmSregs>(nameof(KvmSregs.Gdt)));
        Assert.Equal(224, (int)Marshal.OffsetOf<KvmSregs>(nameof(KvmSregs.Cr0)));
        Assert.Equal(264, (int)Marshal.OffsetOf<KvmSregs>(nameof(KvmSregs.Efer)));
        Assert.Equal(280, (int)Marshal.OffsetOf<KvmSregs>(nameof(KvmSregs.InterruptBitmap)));
    }

    [Fact]
    public void Fpu_field_offsets()
    {
        Assert.Equal(128, (int)Marshal.OffsetOf<KvmFpu>(nameof(KvmFpu.Fcw)));
        Assert.Equal(136, (int)Marshal.OffsetOf<KvmFpu>(nameof(KvmFpu.LastIp)));
        Assert.Equal(152, (int)Marshal.OffsetOf<KvmFpu>(nameof(KvmFpu.Xmm)));
        Assert.Equal(408, (int)Marshal.OffsetOf<KvmFpu>(nameof(KvmFpu.Mxcsr)));
    }

    [Fact]
    public void Run_exit_union_offsets()
    {
        KvmRun run = default;
        byte* b = (byte*)&run;
        Assert.Equal(8, (int)((byte*)&run.ExitReason - b));
        Assert.Equal(32, (int)((byte*)&run.Io - b));
        Assert.Equal(32, (int)((byte*)&run.Mmio - b));
        var io = default(IoExit);
        Assert.Equal(2, (int)((byte*)&io.Port - (byte*)&io));
        Assert.Equal(8, (int)((byte*)&io.DataOffset - (byte*)&io));
        var mmio = default(MmioExit);
        Assert.Equal(16, (int)((byte*)&mmio.Len - (byte*)&mmio));
        Assert.Equal(20, (int)((byte*)&mmio.IsWrite - (byte*)&mmio));
        Assert.Equal(8, (int)Marshal.OffsetOf<KvmIoeventfd>(nameof(KvmIoeventfd.Addr)));
        Assert.Equal(20, (int)Marshal.OffsetOf<KvmIoeventfd>(nameof(KvmIoeventfd.Fd)));
        // struct kvm_irq_routing_entry: gsi, type, flags, pad, then the union (irqchip {irqchip, pin}, msi {...}).
        Assert.Equal(16, (int)Marshal.OffsetOf<KvmIrqRoutingEntry>(nameof(KvmIrqRoutingEntry.Irqchip)));
        Assert.Equal(20, (int)Marshal.OffsetOf<KvmIrqRoutingEntry>(nameof(KvmIrqRoutingEntry.Pin)));
        Assert.Equal(16, (int)Marshal.OffsetOf<KvmIrqRoutingEntry>(nameof(KvmIrqRoutingEntry.MsiAddressLow)));
        Assert.Equal(24, (int)Marshal.OffsetOf<KvmIrqRoutingEntry>(nameof(KvmIrqRoutingEntry.MsiData)));
    }

    [Theory]
    // Values as the C preprocessor computes them from <linux/kvm.h>.
    [InlineData("KVM_CREATE_VM", 0xAE01u)]
    [InlineData("KVM_RUN", 0xAE80u)]
    [InlineData("KVM_GET_REGS", 0x8090AE81u)]
    [InlineData("KVM_SET_REGS", 0x4090AE82u)]
    [InlineData("KVM_GET_SREGS", 0x8138AE83u)]
    [InlineData("KVM_SET_SREGS", 0x4138AE84u)]
    [InlineData("KVM_SET_USER_MEMORY_REGION", 0x4020AE46u)]
    [InlineData("KVM_SET_CPUID2", 0x4008AE90u)]
    [InlineData("KVM_GET_SUPPORTED_CPUID", 0xC008AE05u)]
    [InlineData("KVM_IRQFD", 0x4020AE76u)]
    [InlineData("KVM_IOEVENTFD", 0x4040AE79u)]
    [InlineData("KVM_SET_GSI_ROUTING", 0x4008AE6Au)]
    [InlineData("KVM_CREATE_PIT2", 0x4040AE77u)]
    [InlineData("KVM_SET_MSRS", 0x4008AE89u)]
    [InlineData("KVM_SET_FPU", 0x41A0AE8Du)]
    [InlineData("KVM_SET_LAPIC", 0x4400AE8Fu)]
    public void The_ioctl_numbers(string name, uint expected)
    {
        var f = typeof(Ioctls).GetField(name)!;
        Assert.Equal((nuint)expected, (nuint)f.GetValue(null)!);
    }
}
