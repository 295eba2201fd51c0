using System.Buffers.Binary;
using System.Numerics;

namespace Flint.Devices.Mmds;

/// <summary>
/// SipHash-2-4 with 128-bit output (Aumasson and Bernstein): a keyed pseudo-random function made for MACs over short
/// messages. MMDS tokens use it instead of HMAC-SHA256 from System.Security.Cryptography, which on Linux calls OpenSSL:
/// flint is a static executable, and loading libssl from it crashed the VMM (SIGFPE) as soon as MMDS V2 was set up.
/// </summary>
public static class SipHash128
{
    public static void Compute(ReadOnlySpan<byte> key16, ReadOnlySpan<byte> message, Span<byte> tag16)
    {
        if (key16.Length != 16) throw new ArgumentException("SipHash needs a 16-byte key", nameof(key16));
        if (tag16.Length < 16) throw new ArgumentException("SipHash-128 writes 16 bytes", nameof(tag16));
        ulong k0 = BinaryPrimitives.ReadUInt64LittleEndian(key16), k1 = BinaryPrimitives.ReadUInt64LittleEndian(key16[8..]);
        ulong v0 = 0x736f6d6570736575UL ^ k0, v1 = 0x646f72616e646f6dUL ^ k1 ^ 0xee;
        ulong v2 = 0x6c7967656e657261UL ^ k0, v3 = 0x7465646279746573UL ^ k1;
        int full = message.Length & ~7;
        for (int i = 0; i < full; i += 8)
        {
            ulong m = BinaryPrimitives.ReadUInt64LittleEndian(message[i..]);
            v3 ^= m; Round(ref v0, ref v1, ref v2, ref v3); Round(ref v0, ref v1, ref v2, ref v3); v0 ^= m;
        }
        ulong b = (ulong)message.Length << 56;
        for (int i = 0; i < message.Length - full; i++) b |= (ulong)message[full + i] << (8 * i);
        v3 ^= b; Round(ref v0, ref v1, ref v2, ref v3); Round(ref v0, ref v1, ref v2, ref v3); v0 ^= b;
        v2 ^= 0xee;
        for (int i = 0; i < 4; i++) Round(ref v0, ref v1, ref v2, ref v3);
        BinaryPrimitives.WriteUInt64LittleEndian(tag16, v0 ^ v1 ^ v2 ^ v3);
        v1 ^= 0xdd;
        for (int i = 0; i < 4; i++) Round(ref v0, ref v1, ref v2, ref v3);
        BinaryPrimitives.WriteUInt64LittleEndian(tag16[8..], v0 ^ v1 ^ v2 ^ v3);
    }

    private static void Round(ref ulong v0, ref ulong v1, ref ulong v2, ref ulong v3)
    {
        v0 += v1; v1 = BitOperations.RotateLeft(v1, 13); v1 ^= v0; v0 = BitOperations.RotateLeft(v0, 32);
        v2 += v3; v3 = BitOperations.RotateLeft(v3, 16); v3 ^= v2;
        v0 += v3; v3 = BitOperations.RotateLeft(v3, 21); v3 ^= v0;
        v2 += v1; v1 = BitOperations.RotateLeft(v1, 17); v1 ^= v2; v2 = BitOperations.RotateLeft(v2, 32);
    }
}
