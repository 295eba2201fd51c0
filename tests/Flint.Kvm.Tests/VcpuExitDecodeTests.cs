using System.Runtime.InteropServices;

namespace Flint.Kvm.Tests;

/// <summary>Decoding kvm_run without KVM: a zeroed page filled in as the kernel would.</summary>
public unsafe class VcpuExitDecodeTests : IDisposable
{
    private const int PageSize = 4096;
    // SAFETY: a zeroed native page that outlives every span Decode hands out (freed in Dispose).
    private readonly byte* _page = (byte*)NativeMemory.AllocZeroed(PageSize);
    private KvmRun* Run => (KvmRun*)_page;

    public void Dispose() => NativeMemory.Free(_page);

    [Fact]
    public void Io_exit_data_is_read_at_the_kernel_s_data_offset()
    {
        Run->ExitReason = (uint)ExitReason.Io;
        Run->Io = new IoExit { Direction = IoExit.Out, Size = 2, Port = 0x3f8, Count = 3, DataOffset = 1024 };
        for (int i = 0; i < 6; i++) _page[1024 + i] = (byte)(i + 1);

        var exit = VcpuExit.Decode(Run, PageSize);

        Assert.Equal(ExitReason.Io, exit.Reason);
        Assert.Equal(0x3f8ul, exit.Address);
        Assert.True(exit.IsWrite);
        Assert.Equal(2, exit.Size);
        Assert.Equal(3, exit.Count);
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6 }, exit.Data.ToArray());
        exit.Data[0] = 9;   // in place: an IO-in answer reaches the page KVM reads
        Assert.Equal(9, _page[1024]);
    }

    [Theory]
    [InlineData(4096ul, 1u, 1)]       // offset at the end of the page
    [InlineData(4090ul, 2u, 4)]       // runs past the end
    [InlineData(1024ul, 1u, 3)]       // not an IO size
    [InlineData(1024ul, 0u, 1)]       // no accesses
    [InlineData(ulong.MaxValue - 2, 1u, 4)]   // would wrap
    public void Io_exit_outside_the_page_is_refused(ulong offset, uint count, int size)
    {
        Run->ExitReason = (uint)ExitReason.Io;
        Run->Io = new IoExit { Direction = IoExit.In, Size = (byte)size, Port = 0x60, Count = count, DataOffset = offset };
        Assert.Throws<InvalidOperationException>(() => VcpuExit.Decode(Run, PageSize));
    }

    [Fact]
    public void Mmio_exit_data_is_kvm_run_mmio_data()
    {
        Run->ExitReason = (uint)ExitReason.Mmio;
        Run->Mmio.PhysAddr = 0xd000_0000;
        Run->Mmio.Len = 4;
        Run->Mmio.IsWrite = 1;
        // struct kvm_run: the exit union at 32, mmio.phys_addr (8 bytes) then mmio.data[8].
        for (int i = 0; i < 4; i++) _page[40 + i] = (byte)(0xa0 + i);

        var exit = VcpuExit.Decode(Run, PageSize);

        Assert.Equal(ExitReason.Mmio, exit.Reason);
        Assert.Equal(0xd000_0000ul, exit.Address);
        Assert.True(exit.IsWrite);
        Assert.Equal(4, exit.Size);
        Assert.Equal(new byte[] { 0xa0, 0xa1, 0xa2, 0xa3 }, exit.Data.ToArray());
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(9u)]
    [InlineData(uint.MaxValue)]
    public void Mmio_exit_with_an_impossible_length_is_refused(uint len)
    {
        Run->ExitReason = (uint)ExitReason.Mmio;
        Run->Mmio.Len = len;
        Assert.Throws<InvalidOperationException>(() => VcpuExit.Decode(Run, PageSize));
    }

    [Fact]
    public void Other_exits_carry_their_detail()
    {
        Run->ExitReason = (uint)ExitReason.SystemEvent;
        Run->SystemEvent.Type = (uint)SystemEventType.Reset;
        var e = VcpuExit.Decode(Run, PageSize);
        Assert.Equal(ExitReason.SystemEvent, e.Reason);
        Assert.Equal((ulong)SystemEventType.Reset, e.Detail);
        Assert.True(e.Data.IsEmpty);

        Run->ExitReason = (uint)ExitReason.FailEntry;
        Run->HardwareExitReason = 0x80000021;
        Assert.Equal(0x80000021ul, VcpuExit.Decode(Run, PageSize).Detail);
    }

    [Fact]
    public void Kvmclock_ctrl_is_the_linux_request_number() =>
        Assert.Equal((nuint)0xAEADu, Ioctls.KVM_KVMCLOCK_CTRL);
}
