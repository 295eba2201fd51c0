namespace Flint.Memory;

/// <summary>A guest-physical access outside guest RAM. Device code catches it and fails the one request.</summary>
public sealed class GuestMemoryException(ulong address, ulong length)
    : Exception($"guest memory access out of range: 0x{address:x} + {length}")
{
    public ulong Address { get; } = address;
    public ulong Length { get; } = length;
}
