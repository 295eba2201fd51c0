using Flint.Devices.Legacy;
using Flint.Snapshot;

namespace Flint.Devices.Tests.Legacy;

public sealed class SerialStateTests
{
    private static byte Rd(Serial s, ulong off) { Span<byte> b = stackalloc byte[1]; s.Read(off, b); return b[0]; }
    private static void Wr(Serial s, ulong off, byte v) => s.Write(off, [v]);

    [Fact]
    public void Registers_and_receive_FIFO_survive_a_save_and_restore()
    {
        var a = new Serial(new MemoryStream(), new CountingInterrupt());
        Wr(a, 3, 0x80); Wr(a, 0, 0x01); Wr(a, 1, 0x00); Wr(a, 3, 0x03); // divisor 1, 8N1
        Wr(a, 7, 0x5a);                                                   // scratch
        Wr(a, 1, 0x01);                                                   // IER: RDA
        a.EnqueueInput("hi"u8);
        var w = new StateWriter();
        a.SaveState(w);

        var b = new Serial(new MemoryStream(), new CountingInterrupt());
        b.RestoreState(new StateReader("serial", w.ToArray()));
        Assert.Equal(0x5a, Rd(b, 7));
        Assert.Equal(0x03, Rd(b, 3));
        Assert.Equal(0x01, Rd(b, 1));
        Assert.Equal(0x04, Rd(b, 2) & 0x0f);   // IIR: data available, recomputed
        Assert.Equal((byte)'h', Rd(b, 0));
        Assert.Equal((byte)'i', Rd(b, 0));
        Assert.Equal(0, Rd(b, 5) & 1);          // FIFO empty now
    }

    [Fact]
    public void Oversized_FIFO_in_the_state_is_refused()
    {
        var w = new StateWriter();
        for (int i = 0; i < 7; i++) w.U8(0);
        w.Bool(false);
        w.Bytes(new byte[65]);
        var s = new Serial(null, new CountingInterrupt());
        Assert.Throws<SnapshotFormatException>(() => s.RestoreState(new StateReader("serial", w.ToArray())));
    }
}
