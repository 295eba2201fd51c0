using System.Runtime.InteropServices;

namespace Flint.Seccomp;

/// <summary>Packing of sock_filter instructions into ulongs for the generated, pre-compiled default programs.</summary>

internal static partial class PrecompiledFilters
{
    /// <summary>code | jt &lt;&lt; 16 | jf &lt;&lt; 24 | k &lt;&lt; 32: the in-memory layout of struct sock_filter on little-endian.</summary>
    public static ulong Pack(SockFilter f) => f.Code | (ulong)f.Jt << 16 | (ulong)f.Jf << 24 | (ulong)f.K << 32;

    public static ReadOnlySpan<ulong> For(ThreadKind kind) => kind switch
    {
        ThreadKind.Vmm => Vmm,
        ThreadKind.Api => Api,
        ThreadKind.Vcpu => Vcpu,
        _ => Process,
    };

    public static SockFilter[] Program(ThreadKind kind) => MemoryMarshal.Cast<ulong, SockFilter>(For(kind)).ToArray();
}
