using Flint.Devices.Legacy;

namespace Flint.Devices.Tests.Legacy;

public class I8042Tests
{
    private static byte In(I8042 d, ulong off) { Span<byte> b = stackalloc byte[1]; d.Read(off, b); return b[0]; }

    [Fact]
    public void Reset_command_calls_the_reset_handler()
    {
        int resets = 0;
        var d = new I8042(new CountingInterrupt(), () => resets++);
        d.Write(4, [0xfe]);
        Assert.Equal(1, resets);
        Assert.Equal(1, d.Metrics.ResetCount);
    }

    [Fact]
    public void Ctrl_alt_del_queues_scancodes_and_interrupts()
    {
        var irq = new CountingInterrupt();
        var d = new I8042(irq, () => { });
        Assert.True(d.SendCtrlAltDel());
        Assert.Equal(1, irq.Count);
        Assert.Equal(1, In(d, 4) & 1);
        var got = new List<byte>();
        while ((In(d, 4) & 1) != 0) got.Add(In(d, 0));
        Assert.Equal(new byte[] { 0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14 }, got);
    }

    [Fact]
    public void Control_register_and_self_test()
    {
        var d = new I8042(new CountingInterrupt(), () => { });
        d.Write(4, [0x60]);
        d.Write(0, [0x47]);
        d.Write(4, [0x20]);
        Assert.Equal(0x47, In(d, 0));
        d.Write(4, [0xaa]);
        Assert.Equal(0x55, In(d, 0));
    }

    [Fact]
    public void Buffer_overflow_refuses_ctrl_alt_del()
    {
        var d = new I8042(new CountingInterrupt(), () => { });
        Assert.True(d.SendCtrlAltDel());
        Assert.False(d.SendCtrlAltDel());
        Assert.Equal(1, d.Metrics.MissedWriteCount);
    }
}
