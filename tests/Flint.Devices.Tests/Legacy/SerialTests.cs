using Flint.Devices.Legacy;

namespace Flint.Devices.Tests.Legacy;

public class SerialTests
{
    private static byte In(Serial s, ulong off) { Span<byte> b = stackalloc byte[1]; s.Read(off, b); return b[0]; }
    private static void Out(Serial s, ulong off, byte v) => s.Write(off, [v]);

    [Fact]
    public void Transmitted_bytes_reach_the_output_stream()
    {
        var ms = new MemoryStream();
        var s = new Serial(ms, new CountingInterrupt());
        foreach (var c in "hi\n"u8.ToArray()) Out(s, 0, c);
        Assert.Equal("hi\n"u8.ToArray(), ms.ToArray());
        Assert.Equal(3, s.Metrics.WriteCount);
    }

    [Fact]
    public void Line_status_reports_transmitter_empty_and_data_ready()
    {
        var s = new Serial(null, new CountingInterrupt());
        Assert.Equal(0x60, In(s, 5) & 0x61);
        s.EnqueueInput("x"u8);
        Assert.Equal(1, In(s, 5) & 1);
        Assert.Equal((byte)'x', In(s, 0));
        Assert.Equal(0, In(s, 5) & 1);
    }

    [Fact]
    public void Divisor_latch_is_separate_from_data_and_ier()
    {
        var ms = new MemoryStream();
        var s = new Serial(ms, new CountingInterrupt());
        Out(s, 3, 0x80); // DLAB
        Out(s, 0, 0x01);
        Out(s, 1, 0x00);
        Assert.Equal(1, In(s, 0));
        Out(s, 3, 0x03);
        Assert.Empty(ms.ToArray());
        Assert.Equal(0, In(s, 1));
    }

    [Fact]
    public void Enabling_thre_interrupt_raises_one_and_iir_reports_it()
    {
        var irq = new CountingInterrupt();
        var s = new Serial(null, irq);
        Out(s, 1, 0x02);
        Assert.Equal(1, irq.Count);
        Assert.Equal(0x02, In(s, 2) & 0x0f);
        Assert.Equal(0x01, In(s, 2) & 0x0f); // reading IIR cleared the THRE condition
    }

    [Fact]
    public void Received_data_interrupts_when_enabled()
    {
        var irq = new CountingInterrupt();
        var s = new Serial(null, irq);
        Out(s, 1, 0x01);
        s.EnqueueInput("ab"u8);
        Assert.Equal(1, irq.Count);
        Assert.Equal(0x04, In(s, 2) & 0x0f);
    }

    [Fact]
    public void Loopback_mode_echoes_into_the_receiver()
    {
        var ms = new MemoryStream();
        var s = new Serial(ms, new CountingInterrupt());
        Out(s, 4, 0x10);
        Out(s, 0, 0x5a);
        Assert.Empty(ms.ToArray());
        Assert.Equal(0x5a, In(s, 0));
    }

    [Fact]
    public void Receive_fifo_is_bounded()
    {
        var s = new Serial(null, new CountingInterrupt());
        Assert.Equal(64, s.EnqueueInput(new byte[100]));
        Assert.Equal(0, s.RxSpace);
    }

    [Fact]
    public void Scratch_register_round_trips_and_wide_accesses_are_ignored()
    {
        var s = new Serial(null, new CountingInterrupt());
        Out(s, 7, 0xa5);
        Assert.Equal(0xa5, In(s, 7));
        s.Write(7, [1, 2]);
        Assert.Equal(0xa5, In(s, 7));
    }
}
