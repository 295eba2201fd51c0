using Flint.Arch.X86;
using Flint.Kvm;

namespace Flint.Arch.X86.Tests;

public class CustomCpuTemplateTests
{
    [Theory]
    [InlineData("0b1", 32, 0x1UL, 0x1UL)]
    [InlineData("0b0", 32, 0x1UL, 0x0UL)]
    [InlineData("0bx", 32, 0x0UL, 0x0UL)]
    [InlineData("0b10x1", 32, 0xdUL, 0x9UL)]
    [InlineData("0b1_0x_1", 32, 0xdUL, 0x9UL)]
    [InlineData("0b1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 32, 0x8000_0000UL, 0x8000_0000UL)]
    public void Bitmaps_give_mask_and_value_lowest_bit_last(string bitmap, int width, ulong mask, ulong value)
    {
        var b = BitModifier.Parse(bitmap, width);
        Assert.Equal((mask, value), (b.Mask, b.Value));
    }

    [Theory]
    [InlineData("1010", "start with 0b")]
    [InlineData("0b", "no bits")]
    [InlineData("0b102", "'2' is not")]
    [InlineData("0b1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx0", "more than 32 bits")]
    public void Bad_bitmaps_are_refused(string bitmap, string why)
    {
        var e = Assert.Throws<FormatException>(() => BitModifier.Parse(bitmap, 32));
        Assert.Contains(why, e.Message);
    }

    [Fact]
    public void Apply_sets_clears_and_keeps_bits()
    {
        var b = BitModifier.Parse("0b1x0", 32);
        Assert.Equal(0b1110UL, b.Apply(0b1011)); // bit 2 set, bit 1 kept, bit 0 cleared, bit 3 untouched
    }

    [Fact]
    public void Cpuid_modifiers_edit_matching_entries_and_add_missing_ones()
    {
        var entries = new List<KvmCpuidEntry2>
        {
            new() { Function = 1, Index = 0, Ecx = 0x0000_00f0, Edx = 0xffff_ffff },
            new() { Function = 7, Index = 0, Flags = 1, Ebx = 0xff },
            new() { Function = 7, Index = 1, Flags = 1, Ebx = 0xff },
        };
        var t = new CustomCpuTemplate
        {
            Cpuid =
            [
                new(1, 0, 0, [(CpuidRegister.Ecx, BitModifier.Parse("0b1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 32)), (CpuidRegister.Edx, BitModifier.Parse("0b0", 32))]),
                new(7, 1, 1, [(CpuidRegister.Ebx, BitModifier.Parse("0b0000", 32))]),
                new(0x4000_0010, 0, 0, [(CpuidRegister.Eax, BitModifier.Parse("0b11", 32))]),
            ],
        };
        t.ApplyCpuid(entries);
        Assert.Equal(0x8000_00f0u, entries[0].Ecx);
        Assert.Equal(0xffff_fffeu, entries[0].Edx);
        Assert.Equal(0xffu, entries[1].Ebx);             // subleaf 0 untouched
        Assert.Equal(0xf0u, entries[2].Ebx);             // subleaf 1 edited
        Assert.Equal(3u, entries.Single(e => e.Function == 0x4000_0010).Eax); // added
    }

    [Fact]
    public void Msr_modifiers_apply_to_the_current_values()
    {
        var t = new CustomCpuTemplate { Msrs = [new MsrModifier(0x1a0, BitModifier.Parse("0b1x0", 64))] };
        var e = Assert.Single(t.MsrEntries(_ => 0b1011));
        Assert.Equal((0x1a0u, 0b1110UL), (e.Index, e.Data));
    }
}
