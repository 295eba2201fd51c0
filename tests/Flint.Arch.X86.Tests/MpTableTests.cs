namespace Flint.Arch.X86.Tests;

public class MpTableTests
{
    private static byte Sum(ReadOnlySpan<byte> b) { byte s = 0; foreach (var x in b) s += x; return s; }

    [Theory]
    [InlineData(1u)]
    [InlineData(4u)]
    [InlineData(32u)]
    [InlineData(254u)]
    public void Structures_checksum_and_count(uint n)
    {
        using var mem = Mem.Create(64 * Mem.MiB);
        int count = MpTable.Write(mem, n);
        Assert.Equal((int)n + 1 + 1 + 24 + 2, count);

        var fp = new byte[16];
        mem.Read(0x9fc00, fp);
        Assert.Equal("_MP_"u8.ToArray(), fp[..4]);
        Assert.Equal(0, Sum(fp));
        Assert.Equal(1, fp[8]);
        Assert.Equal(4, fp[9]);
        uint cfg = Le.R32(fp, 4);
        Assert.Equal(0x9fc10u, cfg);

        var hdr = new byte[44];
        mem.Read(cfg, hdr);
        Assert.Equal("PCMP"u8.ToArray(), hdr[..4]);
        int len = BitConverter.ToUInt16(hdr, 4);
        Assert.Equal(44 + 20 * (int)n + 8 * 28, len);
        var table = new byte[len];
        mem.Read(cfg, table);
        Assert.Equal(0, Sum(table));
        Assert.Equal(count, BitConverter.ToUInt16(hdr, 34));
        Assert.Equal(0xfee00000u, Le.R32(hdr, 36));

        // walk the entries
        int o = 44, cpus = 0, buses = 0, ioapics = 0, ints = 0, lints = 0;
        for (int i = 0; i < count; i++)
        {
            switch (table[o])
            {
                case 0:
                    Assert.Equal(cpus, table[o + 1]);                       // APIC id = index
                    Assert.Equal(0x14, table[o + 2]);
                    Assert.Equal(cpus == 0 ? 3 : 1, table[o + 3]);          // enabled, BSP on 0
                    cpus++; o += 20; break;
                case 1:
                    Assert.Equal("ISA   "u8.ToArray(), table[(o + 2)..(o + 8)]);
                    buses++; o += 8; break;
                case 2:
                    Assert.Equal((byte)n, table[o + 1]);
                    Assert.Equal(0x11, table[o + 2]);
                    Assert.Equal(0xfec00000u, Le.R32(table, o + 4));
                    ioapics++; o += 8; break;
                case 3:
                    Assert.Equal(0, table[o + 1]);
                    Assert.Equal(ints, table[o + 5]);
                    Assert.Equal((byte)n, table[o + 6]);
                    Assert.Equal(ints, table[o + 7]);
                    ints++; o += 8; break;
                case 4:
                    Assert.Equal(lints == 0 ? 3 : 1, table[o + 1]);         // ExtINT then NMI
                    Assert.Equal(lints, table[o + 7]);                       // LINT0, LINT1
                    lints++; o += 8; break;
                default: Assert.Fail($"unknown entry type {table[o]}"); break;
            }
        }
        Assert.Equal(((int)n, 1, 1, 24, 2), (cpus, buses, ioapics, ints, lints));
        Assert.True(0x9fc00 + MpTable.TableSize(n) <= 0xe0000);
    }

    [Fact]
    public void Too_many_vcpus_rejected()
    {
        using var mem = Mem.Create(16 * Mem.MiB);
        Assert.Throws<ArgumentOutOfRangeException>(() => MpTable.Write(mem, 255));
        Assert.Throws<ArgumentOutOfRangeException>(() => MpTable.Write(mem, 0));
    }
}
