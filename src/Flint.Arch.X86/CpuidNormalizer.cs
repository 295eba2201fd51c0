using System.Numerics;
using Flint.Kvm;

namespace Flint.Arch.X86;

/// <summary>
/// Turns KVM_GET_SUPPORTED_CPUID into what one vCPU should see: the host's features, but our topology (APIC
/// ids, package/core/thread counts), the hypervisor bit, the TSC-deadline timer (emulated by KVM's in-kernel
/// LAPIC), and no host power-management or PMU details that would be wrong or unusable inside a VM.
/// Topology: <c>vcpuCount</c> logical CPUs in one package; with <c>smt</c> two threads per core.
/// </summary>
public static class CpuidNormalizer
{
    public const int Leaf1EcxTscDeadline = 24, Leaf1EcxHypervisor = 31, Leaf1EdxHtt = 28, Leaf6EaxArat = 2;
    /// <summary>CLFLUSH line size in 8-byte units: 8 = 64 bytes.</summary>
    public const uint ClflushLineSize8 = 8;
    public const uint KvmSignatureLeaf = 0x4000_0000, KvmFeaturesLeaf = 0x4000_0001;
    // "KVMKVMKVM\0\0\0" as ebx/ecx/edx
    public const uint KvmSigEbx = 0x4b4d_564b, KvmSigEcx = 0x564b_4d56, KvmSigEdx = 0x0000_004d;
    /// <summary>Brand string used only when the host reports none.</summary>
    public const string DefaultBrand = "Flint Virtual CPU";

    // Leaf 0xb/0x1f level types
    private const uint LevelInvalid = 0, LevelSmt = 1, LevelCore = 2;

    public static List<KvmCpuidEntry2> Normalize(KvmCpuidEntry2[] supported, uint vcpuIndex, uint vcpuCount, bool smt)
    {
        ArgumentNullException.ThrowIfNull(supported);
        if (vcpuCount == 0 || vcpuCount > 254)
            throw new ArgumentOutOfRangeException(nameof(vcpuCount), $"vCPU count {vcpuCount} outside 1..254");
        if (vcpuIndex >= vcpuCount)
            throw new ArgumentOutOfRangeException(nameof(vcpuIndex), $"vCPU index {vcpuIndex} >= count {vcpuCount}");

        var list = new List<KvmCpuidEntry2>(supported);
        uint threadsPerCore = smt && vcpuCount > 1 ? 2u : 1u;
        uint cores = (vcpuCount + threadsPerCore - 1) / threadsPerCore;
        uint maxBasic = CpuidEntries.Find(list, 0)?.Eax ?? 0;

        CpuidEntries.ForLeaf(list, 1, (ref KvmCpuidEntry2 e) =>
        {
            // ebx: [31:24] initial APIC id, [23:16] logical processors per package, [15:8] CLFLUSH size
            e.Ebx = (e.Ebx & 0xff) | (vcpuIndex << 24) | (Math.Min(vcpuCount, 255u) << 16) | (ClflushLineSize8 << 8);
            e.Ecx |= (1u << Leaf1EcxHypervisor) | (1u << Leaf1EcxTscDeadline);
            if (vcpuCount > 1) e.Edx |= 1u << Leaf1EdxHtt; else e.Edx &= ~(1u << Leaf1EdxHtt);
        });

        CpuidEntries.ForLeaf(list, 4, (ref KvmCpuidEntry2 e) =>
        {
            if ((e.Eax & 0x1f) == 0) return; // cache type 0: no more caches
            uint level = (e.Eax >> 5) & 7;
            // L1/L2 are per core (shared by its threads); L3 and beyond by the whole package.
            uint sharing = level <= 2 ? threadsPerCore : vcpuCount;
            e.Eax = (e.Eax & 0x3fff)
                    | ((Math.Min(sharing, 0x1000u) - 1) << 14)
                    | ((Math.Min(cores, 64u) - 1) << 26);
        });

        // Thermal/power management (leaf 6) and the architectural PMU (leaf 0xa) describe host hardware a
        // guest can't drive; reporting none keeps guest drivers from probing it. Leaf 6 keeps ARAT (eax bit 2),
        // which KVM reports and Firecracker passes on: KVM's LAPIC timer never stops in idle, and without the bit
        // Linux marks it C3STOP and leans on a broadcast timer (the PIT) it does not need.
        CpuidEntries.ForLeaf(list, 6, (ref KvmCpuidEntry2 e) => { e.Eax &= 1u << Leaf6EaxArat; e.Ebx = e.Ecx = e.Edx = 0; });
        CpuidEntries.ForLeaf(list, 0xa, Zero);

        if (maxBasic >= 0xb || CpuidEntries.Contains(list, 0xb))
            ReplaceTopologyLeaf(list, 0xb, vcpuIndex, vcpuCount, threadsPerCore);
        if (maxBasic >= 0x1f && CpuidEntries.Contains(list, 0x1f))
            ReplaceTopologyLeaf(list, 0x1f, vcpuIndex, vcpuCount, threadsPerCore);

        EnsureBrandString(list);
        EnsureKvmLeaf(list);
        return list;
    }

    /// <summary>Normalize, then apply <paramref name="template"/> (which only removes features or whole leaves).</summary>
    public static List<KvmCpuidEntry2> ForVcpu(KvmCpuidEntry2[] supported, uint vcpuIndex, uint vcpuCount, bool smt, ICpuTemplate template)
    {
        var list = Normalize(supported, vcpuIndex, vcpuCount, smt);
        template.Apply(list);
        return list;
    }

    private static void Zero(ref KvmCpuidEntry2 e) => e.Eax = e.Ebx = e.Ecx = e.Edx = 0;

    /// <summary>
    /// Extended topology (0xb, and 0x1f where the host has it): subleaf 0 = SMT level, 1 = core level,
    /// 2 = terminator. eax = bits to shift the x2APIC id right to reach the next level's id; ebx = logical
    /// CPUs at this level; ecx = level number | type &lt;&lt; 8; edx = this vCPU's x2APIC id (= its index).
    /// </summary>
    private static void ReplaceTopologyLeaf(List<KvmCpuidEntry2> list, uint leaf, uint index, uint count, uint threadsPerCore)
    {
        list.RemoveAll(e => e.Function == leaf);
        uint smtShift = (uint)BitOperations.Log2(threadsPerCore);
        uint pkgShift = Math.Max(smtShift, count <= 1 ? 0 : (uint)BitOperations.Log2(count - 1) + 1);
        const uint Sig = KvmCpuidEntry2.KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
        list.Add(new KvmCpuidEntry2 { Function = leaf, Index = 0, Flags = Sig, Eax = smtShift, Ebx = threadsPerCore, Ecx = 0 | (LevelSmt << 8), Edx = index });
        list.Add(new KvmCpuidEntry2 { Function = leaf, Index = 1, Flags = Sig, Eax = pkgShift, Ebx = count, Ecx = 1 | (LevelCore << 8), Edx = index });
        list.Add(new KvmCpuidEntry2 { Function = leaf, Index = 2, Flags = Sig, Eax = 0, Ebx = 0, Ecx = 2 | (LevelInvalid << 8), Edx = index });
    }

    /// <summary>Keeps the host's brand string (what users expect in /proc/cpuinfo); fills one in only if it is blank.</summary>
    private static void EnsureBrandString(List<KvmCpuidEntry2> list)
    {
        var leaves = new KvmCpuidEntry2?[3];
        bool blank = true;
        for (uint i = 0; i < 3; i++)
        {
            leaves[i] = CpuidEntries.Find(list, 0x8000_0002 + i);
            if (leaves[i] is { } l && (l.Eax | l.Ebx | l.Ecx | l.Edx) != 0) blank = false;
        }
        if (!blank || leaves[0] == null || leaves[1] == null || leaves[2] == null) return;
        var brand = new byte[48];
        System.Text.Encoding.ASCII.GetBytes(DefaultBrand, brand);
        for (uint i = 0; i < 3; i++)
        {
            int o = (int)i * 16;
            uint a = U32(brand, o), b = U32(brand, o + 4), c = U32(brand, o + 8), d = U32(brand, o + 12);
            CpuidEntries.ForLeaf(list, 0x8000_0002 + i, (ref KvmCpuidEntry2 e) => { e.Eax = a; e.Ebx = b; e.Ecx = c; e.Edx = d; });
        }
    }

    private static uint U32(ReadOnlySpan<byte> b, int o) => System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(b[o..]);

    /// <summary>
    /// The KVM signature leaf tells Linux it runs on KVM (kvm-clock, paravirt EOI, steal time...). KVM's supported
    /// list normally has it; add it if not, pointing at the features leaf when that is there.
    /// </summary>
    private static void EnsureKvmLeaf(List<KvmCpuidEntry2> list)
    {
        if (CpuidEntries.Contains(list, KvmSignatureLeaf)) return;
        uint max = CpuidEntries.Contains(list, KvmFeaturesLeaf) ? KvmFeaturesLeaf : KvmSignatureLeaf;
        list.Add(new KvmCpuidEntry2 { Function = KvmSignatureLeaf, Eax = max, Ebx = KvmSigEbx, Ecx = KvmSigEcx, Edx = KvmSigEdx });
    }
}
