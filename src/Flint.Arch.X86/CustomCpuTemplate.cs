using Flint.Kvm;

namespace Flint.Arch.X86;

public enum CpuidRegister { Eax, Ebx, Ecx, Edx }

/// <summary>Bits to force in one register: <c>new = (old &amp; ~Mask) | Value</c>; bits outside Mask stay as they are.</summary>
public readonly record struct BitModifier(ulong Mask, ulong Value)
{
    public ulong Apply(ulong old) => (old & ~Mask) | Value;

    /// <summary>
    /// Firecracker's bitmap notation: <c>0b</c> then 1 to <paramref name="width"/> characters, most significant first:
    /// <c>0</c> clears the bit, <c>1</c> sets it, <c>x</c> leaves it; <c>_</c> separates groups. Bits above the string's
    /// length are left as they are. Throws <see cref="FormatException"/> naming the problem.
    /// </summary>
    public static BitModifier Parse(string bitmap, int width)
    {
        if (!bitmap.StartsWith("0b", StringComparison.Ordinal))
            throw new FormatException($"Invalid bitmap \"{bitmap}\": it must start with 0b.");
        ulong mask = 0, value = 0;
        int bits = 0;
        foreach (char c in bitmap.AsSpan(2))
        {
            if (c == '_') continue;
            if (c is not ('0' or '1' or 'x'))
                throw new FormatException($"Invalid bitmap \"{bitmap}\": '{c}' is not 0, 1, x or _.");
            if (++bits > width)
                throw new FormatException($"Invalid bitmap \"{bitmap}\": more than {width} bits.");
            mask <<= 1;
            value <<= 1;
            if (c != 'x') { mask |= 1; if (c == '1') value |= 1; }
        }
        if (bits == 0) throw new FormatException($"Invalid bitmap \"{bitmap}\": no bits.");
        return new BitModifier(mask, value);
    }
}

public sealed record CpuidLeafModifier(uint Leaf, uint Subleaf, uint Flags, IReadOnlyList<(CpuidRegister Register, BitModifier Bits)> Registers);

public sealed record MsrModifier(uint Address, BitModifier Bits);

/// <summary>
/// A Firecracker custom CPU template (PUT /cpu-config, "cpu-config" in a config file) for x86_64: CPUID and MSR bit
/// modifiers and the KVM capabilities to check. As in Firecracker, the CPUID modifiers go on the host's supported
/// CPUID before normalisation (which may then overwrite bits it owns), and the MSR modifiers before the boot-protocol
/// MSRs. The aarch64 parts (reg_modifiers, vcpu_features) are refused where the template is read.
/// </summary>
public sealed class CustomCpuTemplate
{
    public IReadOnlyList<CpuidLeafModifier> Cpuid { get; init; } = [];
    public IReadOnlyList<MsrModifier> Msrs { get; init; } = [];
    /// <summary>KVM capabilities the host must have ("N").</summary>
    public IReadOnlyList<int> RequiredKvmCapabilities { get; init; } = [];
    /// <summary>Capabilities taken off the checks ("!N"); Flint checks none by default, so these change nothing.</summary>
    public IReadOnlyList<int> WaivedKvmCapabilities { get; init; } = [];

    /// <summary>Applies the CPUID modifiers in place; a leaf/subleaf the list lacks is added (zeroed, with the template's flags).</summary>
    public void ApplyCpuid(List<KvmCpuidEntry2> entries)
    {
        foreach (var m in Cpuid)
        {
            int i = entries.FindIndex(e => e.Function == m.Leaf && e.Index == m.Subleaf);
            if (i < 0)
            {
                entries.Add(new KvmCpuidEntry2 { Function = m.Leaf, Index = m.Subleaf, Flags = m.Flags });
                i = entries.Count - 1;
            }
            var e = entries[i];
            foreach (var (reg, bits) in m.Registers)
            {
                switch (reg)
                {
                    case CpuidRegister.Eax: e.Eax = (uint)bits.Apply(e.Eax); break;
                    case CpuidRegister.Ebx: e.Ebx = (uint)bits.Apply(e.Ebx); break;
                    case CpuidRegister.Ecx: e.Ecx = (uint)bits.Apply(e.Ecx); break;
                    case CpuidRegister.Edx: e.Edx = (uint)bits.Apply(e.Edx); break;
                }
            }
            entries[i] = e;
        }
    }

    /// <summary>The MSR entries to write: each modifier applied to the vCPU's current value (<paramref name="current"/>).</summary>
    public KvmMsrEntry[] MsrEntries(Func<uint, ulong> current) =>
        [.. Msrs.Select(m => new KvmMsrEntry { Index = m.Address, Data = m.Bits.Apply(current(m.Address)) })];
}
