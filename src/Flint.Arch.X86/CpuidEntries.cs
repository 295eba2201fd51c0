using System.Runtime.InteropServices;
using Flint.Kvm;

namespace Flint.Arch.X86;

/// <summary>Helpers for editing a CPUID list in place (entries are structs, so edits go through refs).</summary>
public static class CpuidEntries
{
    /// <summary>Applies <paramref name="edit"/> to every entry of leaf <paramref name="function"/> (all subleaves).</summary>
    public static void ForLeaf(List<KvmCpuidEntry2> list, uint function, CpuidEdit edit)
    {
        var span = CollectionsMarshal.AsSpan(list);
        for (int i = 0; i < span.Length; i++)
            if (span[i].Function == function) edit(ref span[i]);
    }

    /// <summary>Applies <paramref name="edit"/> to leaf <paramref name="function"/> subleaf <paramref name="index"/>, if present.</summary>
    public static void ForSubleaf(List<KvmCpuidEntry2> list, uint function, uint index, CpuidEdit edit)
    {
        var span = CollectionsMarshal.AsSpan(list);
        for (int i = 0; i < span.Length; i++)
            if (span[i].Function == function && span[i].Index == index) edit(ref span[i]);
    }

    public static bool Contains(IEnumerable<KvmCpuidEntry2> list, uint function)
    {
        foreach (var e in list) if (e.Function == function) return true;
        return false;
    }

    /// <summary>The first entry of (function, index), or null.</summary>
    public static KvmCpuidEntry2? Find(IEnumerable<KvmCpuidEntry2> list, uint function, uint index = 0)
    {
        foreach (var e in list) if (e.Function == function && e.Index == index) return e;
        return null;
    }

    public static void ClearBits(ref uint reg, ReadOnlySpan<int> bits)
    {
        foreach (int b in bits) reg &= ~(1u << b);
    }
}

public delegate void CpuidEdit(ref KvmCpuidEntry2 entry);
