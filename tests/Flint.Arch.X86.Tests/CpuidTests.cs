using Flint.Kvm;

namespace Flint.Arch.X86.Tests;

public class CpuidTests
{
    private const uint Sig = KvmCpuidEntry2.KVM_CPUID_FLAG_SIGNIFCANT_INDEX;

    /// <summary>A plausible KVM_GET_SUPPORTED_CPUID result from an Intel host.</summary>
    internal static KvmCpuidEntry2[] Supported() =>
    [
        new() { Function = 0, Eax = 0x1f, Ebx = 0x756e6547, Ecx = 0x6c65746e, Edx = 0x49656e69 },
        new() { Function = 1, Eax = 0x806f8, Ebx = 0x0a0b_0c0d, Ecx = 0xfffa3203, Edx = 0x178bfbff },
        new() { Function = 4, Index = 0, Flags = Sig, Eax = 0xfc00_4121, Ebx = 1, Ecx = 2, Edx = 3 }, // L1d
        new() { Function = 4, Index = 1, Flags = Sig, Eax = 0xfc00_4143 }, // L2
        new() { Function = 4, Index = 2, Flags = Sig, Eax = 0xfc3f_c163 }, // L3
        new() { Function = 4, Index = 3, Flags = Sig, Eax = 0 },           // terminator
        new() { Function = 6, Eax = 0x77, Ebx = 2, Ecx = 9, Edx = 1 },
        new() { Function = 7, Index = 0, Flags = Sig, Ebx = 0xffff_ffff, Ecx = 0xffff_ffff, Edx = 0xffff_ffff },
        new() { Function = 7, Index = 1, Flags = Sig, Eax = 0x30 },
        new() { Function = 0xa, Eax = 0x07300805, Edx = 0x603 },
        new() { Function = 0xb, Index = 0, Flags = Sig, Eax = 1, Ebx = 2, Ecx = 0x100, Edx = 99 },
        new() { Function = 0xd, Index = 0, Flags = Sig, Eax = 0x2e7, Ebx = 0xa88, Ecx = 0xa88 },
        new() { Function = 0xd, Index = 1, Flags = Sig, Eax = 0xf },
        new() { Function = 0x1f, Index = 0, Flags = Sig, Eax = 1, Ebx = 2, Ecx = 0x100, Edx = 99 },
        new() { Function = 0x4000_0000, Eax = 0x4000_0001, Ebx = 0x4b4d564b, Ecx = 0x564b4d56, Edx = 0x4d },
        new() { Function = 0x4000_0001, Eax = 0x01007afb },
        new() { Function = 0x8000_0000, Eax = 0x8000_0008 },
        new() { Function = 0x8000_0001, Ecx = 0xffff_ffff },
        new() { Function = 0x8000_0002, Eax = 0x65746e49, Ebx = 0x2952286c },
        new() { Function = 0x8000_0003, Eax = 0x20202020 },
        new() { Function = 0x8000_0004, Eax = 0x20202020 },
    ];

    private static KvmCpuidEntry2 Get(List<KvmCpuidEntry2> l, uint f, uint i = 0) => CpuidEntries.Find(l, f, i)!.Value;

    [Fact]
    public void Leaf1_identity_and_features()
    {
        var l = CpuidNormalizer.Normalize(Supported(), 3, 4, false);
        var e = Get(l, 1);
        Assert.Equal(3u, e.Ebx >> 24);
        Assert.Equal(4u, (e.Ebx >> 16) & 0xff);
        Assert.Equal(8u, (e.Ebx >> 8) & 0xff);
        Assert.Equal(0x0du, e.Ebx & 0xff);               // brand index kept
        Assert.NotEqual(0u, e.Ecx & (1u << 31));          // hypervisor
        Assert.NotEqual(0u, e.Ecx & (1u << 24));          // TSC deadline
        Assert.NotEqual(0u, e.Edx & (1u << 28));          // HTT
        Assert.Equal(0x806f8u, e.Eax);

        var one = Get(CpuidNormalizer.Normalize(Supported(), 0, 1, false), 1);
        Assert.Equal(0u, one.Edx & (1u << 28));
        Assert.Equal(0u, one.Ebx >> 24);
    }

    [Fact]
    public void Leaf4_cache_topology()
    {
        var l = CpuidNormalizer.Normalize(Supported(), 0, 4, true); // 2 cores x 2 threads
        Assert.Equal(1u, Get(l, 4, 0).Eax >> 26);                  // cores - 1
        Assert.Equal(1u, (Get(l, 4, 0).Eax >> 14) & 0xfff);        // L1 shared by 2 threads
        Assert.Equal(0x121u, Get(l, 4, 0).Eax & 0x3fff);            // type/level kept
        Assert.Equal(1u, Get(l, 4, 0).Ebx);                         // geometry kept
        Assert.Equal(1u, (Get(l, 4, 1).Eax >> 14) & 0xfff);
        Assert.Equal(3u, (Get(l, 4, 2).Eax >> 14) & 0xfff);        // L3 shared by all 4
        Assert.Equal(0u, Get(l, 4, 3).Eax);                         // terminator untouched
    }

    [Theory]
    [InlineData(0xbu)]
    [InlineData(0x1fu)]
    public void The_extended_topology(uint leaf)
    {
        var l = CpuidNormalizer.Normalize(Supported(), 5, 6, true); // 3 cores x 2 threads
        var sub = l.Where(e => e.Function == leaf).OrderBy(e => e.Index).ToArray();
        Assert.Equal(3, sub.Length);
        Assert.All(sub, e => Assert.Equal(5u, e.Edx));
        Assert.All(sub, e => Assert.Equal(Sig, e.Flags));
        Assert.Equal((1u, 2u, 0x100u), (sub[0].Eax, sub[0].Ebx, sub[0].Ecx));
        Assert.Equal((3u, 6u, 0x201u), (sub[1].Eax, sub[1].Ebx, sub[1].Ecx));
        Assert.Equal((0u, 0u, 2u), (sub[2].Eax, sub[2].Ebx, sub[2].Ecx));

        var single = CpuidNormalizer.Normalize(Supported(), 0, 1, false).Where(e => e.Function == leaf).OrderBy(e => e.Index).ToArray();
        Assert.Equal((0u, 1u), (single[0].Eax, single[0].Ebx));
        Assert.Equal((0u, 1u), (single[1].Eax, single[1].Ebx));
    }

    [Fact]
    public void Power_and_pmu_leaves_cleared_but_arat_rest_kept()
    {
        var l = CpuidNormalizer.Normalize(Supported(), 0, 2, false);
        var six = Get(l, 6);
        Assert.Equal(4u, six.Eax); // ARAT only (KVM's 0x4 plus host bits in the fake list)
        Assert.Equal(0u, six.Ebx | six.Ecx | six.Edx);
        var a = Get(l, 0xa);
        Assert.Equal(0u, a.Eax | a.Ebx | a.Ecx | a.Edx);
        Assert.Equal(0x65746e49u, Get(l, 0x8000_0002).Eax);       // host brand kept
        Assert.Equal(0x4000_0001u, Get(l, 0x4000_0000).Eax);
        Assert.Equal(Supported().Length - 2 + 6, l.Count);       // 0xb and 0x1f: 1 entry each -> 3 each
    }

    [Fact]
    public void Kvm_leaf_and_brand_added_when_missing()
    {
        var s = Supported().Where(e => e.Function != 0x4000_0000).Select(e =>
            e.Function is >= 0x8000_0002 and <= 0x8000_0004 ? new KvmCpuidEntry2 { Function = e.Function } : e).ToArray();
        var l = CpuidNormalizer.Normalize(s, 0, 1, false);
        var k = Get(l, 0x4000_0000);
        Assert.Equal((0x4000_0001u, 0x4b4d564bu, 0x564b4d56u, 0x4du), (k.Eax, k.Ebx, k.Ecx, k.Edx));
        var b = Get(l, 0x8000_0002);
        Assert.Equal(0x6e696c46u, b.Eax); // "Flin"
    }

    [Fact]
    public void Bad_counts_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => CpuidNormalizer.Normalize(Supported(), 2, 2, false));
        Assert.Throws<ArgumentOutOfRangeException>(() => CpuidNormalizer.Normalize(Supported(), 0, 0, false));
    }

    [Fact]
    public void KvmPvm_template_hides_emulator_unfriendly_features()
    {
        var t = CpuTemplates.KvmPvm;
        var l = CpuidNormalizer.ForVcpu(Supported(), 0, 1, false, t);
        var one = Get(l, 1);
        foreach (int bit in new[] { 12, 13, 26, 27, 28, 29 }) Assert.Equal(0u, one.Ecx & (1u << bit));
        Assert.NotEqual(0u, one.Ecx & (1u << 31));             // hypervisor bit survives
        Assert.NotEqual(0u, one.Ecx & 1u);                     // SSE3 untouched
        var seven = Get(l, 7, 0);
        foreach (int bit in new[] { 5, 16, 17, 21, 26, 27, 28, 30, 31 }) Assert.Equal(0u, seven.Ebx & (1u << bit));
        foreach (int bit in new[] { 1, 6, 11, 12, 14 }) Assert.Equal(0u, seven.Ecx & (1u << bit));
        foreach (int bit in new[] { 2, 3, 8, 23 }) Assert.Equal(0u, seven.Edx & (1u << bit));
        Assert.NotEqual(0u, seven.Ebx & 1u);                   // FSGSBASE untouched
        Assert.All(l.Where(e => e.Function == 0xd), e => Assert.Equal(0u, e.Eax | e.Ebx | e.Ecx | e.Edx));
        var kvmFeatures = Get(l, 0x4000_0001).Eax;
        foreach (int bit in new[] { 5, 7, 11, 13 }) Assert.Equal(0u, kvmFeatures & (1u << bit)); // steal time, hypercall users
        Assert.NotEqual(0u, kvmFeatures & (1u << 3));          // kvm-clock (CLOCKSOURCE2) stays: PIT calibration needs it
        Assert.Equal("noxsave clearcpuid=151,308", t.ExtraKernelCmdline);
        Assert.True(t.SkipMsr(0x10a));
        Assert.False(t.SkipMsr(0x10));
    }

    [Fact]
    public void None_template_changes_nothing()
    {
        var a = CpuidNormalizer.Normalize(Supported(), 0, 2, false);
        var b = CpuidNormalizer.ForVcpu(Supported(), 0, 2, false, CpuTemplates.None);
        Assert.Equal(a, b);
        Assert.Equal("", CpuTemplates.None.ExtraKernelCmdline);
    }

    [Fact]
    public void Templates_by_name_and_detection()
    {
        Assert.Same(CpuTemplates.None, CpuTemplates.ByName("None"));
        Assert.Same(CpuTemplates.KvmPvm, CpuTemplates.ByName("KvmPvm"));
        Assert.Same(CpuTemplates.KvmPvm, CpuTemplates.ByName("kvmpvm"));
        Assert.Null(CpuTemplates.ByName("T2"));
        Assert.Same(CpuTemplates.KvmPvm, CpuTemplates.Detect(true));
        Assert.Same(CpuTemplates.None, CpuTemplates.Detect(false));
    }
}
