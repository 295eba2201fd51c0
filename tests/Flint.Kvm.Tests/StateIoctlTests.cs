using Flint.Kvm;

namespace Flint.Kvm.Tests;

/// <summary>The snapshot state ioctl numbers and capability codes, as &lt;linux/kvm.h&gt; (x86_64) defines them (printed by gcc).</summary>
public class StateIoctlTests
{
    [Fact]
    public void Numbers_match_kernel_header()
    {
        Assert.Equal((nuint)0x8040ae9f, StateIoctls.KVM_GET_VCPU_EVENTS);
        Assert.Equal((nuint)0x4040aea0, StateIoctls.KVM_SET_VCPU_EVENTS);
        Assert.Equal((nuint)0x8080aea1, StateIoctls.KVM_GET_DEBUGREGS);
        Assert.Equal((nuint)0x4080aea2, StateIoctls.KVM_SET_DEBUGREGS);
        Assert.Equal((nuint)0x9000aea4, StateIoctls.KVM_GET_XSAVE);
        Assert.Equal((nuint)0x5000aea5, StateIoctls.KVM_SET_XSAVE);
        Assert.Equal((nuint)0x9000aecf, StateIoctls.KVM_GET_XSAVE2);
        Assert.Equal((nuint)0x8188aea6, StateIoctls.KVM_GET_XCRS);
        Assert.Equal((nuint)0x4188aea7, StateIoctls.KVM_SET_XCRS);
        Assert.Equal((nuint)0xaea2, StateIoctls.KVM_SET_TSC_KHZ);
        Assert.Equal((nuint)0xc208ae62, StateIoctls.KVM_GET_IRQCHIP);
        Assert.Equal((nuint)0x8208ae63, StateIoctls.KVM_SET_IRQCHIP);
        Assert.Equal((nuint)0x8070ae9f, StateIoctls.KVM_GET_PIT2);
        Assert.Equal((nuint)0x4070aea0, StateIoctls.KVM_SET_PIT2);
        Assert.Equal((nuint)0x8030ae7c, StateIoctls.KVM_GET_CLOCK);
        Assert.Equal((nuint)0x4030ae7b, StateIoctls.KVM_SET_CLOCK);
        Assert.Equal((nuint)0x8004ae98, Ioctls.KVM_GET_MP_STATE);
        Assert.Equal((nuint)0x4004ae99, Ioctls.KVM_SET_MP_STATE);
        Assert.Equal((nuint)0xc008ae91, Ioctls.KVM_GET_CPUID2);
    }

    [Fact]
    public void Capabilities_match_kernel_header()
    {
        Assert.Equal(0xd0, StateIoctls.KVM_CAP_XSAVE2);
        Assert.Equal(0x27, StateIoctls.KVM_CAP_ADJUST_CLOCK);
        Assert.Equal(0x37, StateIoctls.KVM_CAP_XSAVE);
        Assert.Equal(0x38, StateIoctls.KVM_CAP_XCRS);
        Assert.Equal(0x32, StateIoctls.KVM_CAP_DEBUGREGS);
        Assert.Equal(0x29, StateIoctls.KVM_CAP_VCPU_EVENTS);
        Assert.Equal(0x3d, StateIoctls.KVM_CAP_GET_TSC_KHZ);
        Assert.Equal(0x3c, StateIoctls.KVM_CAP_TSC_CONTROL);
    }
}
