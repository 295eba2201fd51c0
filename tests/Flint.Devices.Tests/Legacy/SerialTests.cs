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
    public void A_full_receive_fifo_asks_for_room_and_is_told_once_the_guest_has_read_half_of_it()
    {
        // The console input source stops reading stdin while the FIFO is full and waits for this call: before it
        // existed, the bytes a slow guest had no room for were read anyway and dropped (a nested real-kernel test lost
        // the end of a shell line).
        var s = new Serial(null, new CountingInterrupt());
        int calls = 0;
        s.RxRoom = () => calls++;
        var line = new byte[100];
        for (int i = 0; i < line.Length; i++) line[i] = (byte)('a' + i % 26);
        Assert.Equal(64, s.EnqueueInput(line));
        Assert.Equal(0, s.RxSpace);
        s.NotifyWhenRoom();
        Assert.Equal(0, calls);
        for (int i = 0; i < 31; i++) Assert.Equal(line[i], In(s, 0));
        Assert.Equal(0, calls); // 33 still queued: more than half
        Assert.Equal(line[31], In(s, 0));
        Assert.Equal(1, calls);
        Assert.Equal(32, s.EnqueueInput(line.AsSpan(64))); // what the room allows, as the input source reads
        for (int i = 32; i < 96; i++) Assert.Equal(line[i], In(s, 0)); // every byte, in order
        Assert.Equal(4, s.EnqueueInput(line.AsSpan(96)));
        for (int i = 96; i < 100; i++) Assert.Equal(line[i], In(s, 0));
        Assert.Equal(1, calls); // one call per request
        s.NotifyWhenRoom(); // room already: at once
        Assert.Equal(2, calls);
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
