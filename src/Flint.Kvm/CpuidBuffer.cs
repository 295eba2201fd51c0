using System.Runtime.InteropServices;

namespace Flint.Kvm;

/// <summary>Native kvm_cpuid2: a u32 count + padding followed by the entries, as the CPUID ioctls want it.</summary>
// SAFETY: native memory sized for the header plus Capacity entries, freed once in Dispose.
internal sealed unsafe class CpuidBuffer : IDisposable
{
    public void* Pointer { get; private set; }

    public CpuidBuffer(int capacity)
    {
        Pointer = NativeMemory.AllocZeroed((nuint)(8 + capacity * sizeof(KvmCpuidEntry2)));
        *(uint*)Pointer = (uint)capacity;
    }

    public CpuidBuffer(ReadOnlySpan<KvmCpuidEntry2> entries) : this(entries.Length)
    {
        entries.CopyTo(new Span<KvmCpuidEntry2>((byte*)Pointer + 8, entries.Length));
    }

    public KvmCpuidEntry2[] ToArray() =>
        new ReadOnlySpan<KvmCpuidEntry2>((byte*)Pointer + 8, (int)*(uint*)Pointer).ToArray();

    public void Dispose()
    {
        if (Pointer != null) { NativeMemory.Free(Pointer); Pointer = null; }
    }
}
