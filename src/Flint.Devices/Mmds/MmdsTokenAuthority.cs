using System.Buffers.Binary;

namespace Flint.Devices.Mmds;

/// <summary>
/// MMDS V2 session tokens. Stateless: a token is base64url(expiry ms || SipHash-2-4-128(key, expiry)) under a
/// per-process random key from getrandom (no OpenSSL: see <see cref="SipHash128"/>), so issuing tokens never grows memory and a token cannot be forged or extended.
/// </summary>
public sealed class MmdsTokenAuthority
{
    public const int MinTtlSeconds = 1;
    public const int MaxTtlSeconds = 21600;
    private const int TagBytes = 16;

    private readonly byte[] _key = Flint.Sys.Libc.RandomBytes(16);
    private readonly Func<long> _nowMs;

    /// <param name="nowMs">Monotonic clock in ms (tests inject one); default Environment.TickCount64.</param>
    public MmdsTokenAuthority(Func<long>? nowMs = null) => _nowMs = nowMs ?? (() => Environment.TickCount64);

    public static bool IsValidTtl(long ttl) => ttl is >= MinTtlSeconds and <= MaxTtlSeconds;

    public string Generate(int ttlSeconds)
    {
        if (!IsValidTtl(ttlSeconds)) throw new ArgumentOutOfRangeException(nameof(ttlSeconds));
        Span<byte> t = stackalloc byte[8 + TagBytes];
        BinaryPrimitives.WriteInt64LittleEndian(t, _nowMs() + ttlSeconds * 1000L);
        Tag(t[..8], t[8..]);
        return Convert.ToBase64String(t).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    public bool IsValid(string? token)
    {
        if (string.IsNullOrEmpty(token) || token.Length > 64) return false;
        string b64 = token.Replace('-', '+').Replace('_', '/');
        b64 += new string('=', (4 - b64.Length % 4) % 4);
        Span<byte> t = stackalloc byte[48];
        if (!Convert.TryFromBase64String(b64, t, out int n) || n != 8 + TagBytes) return false;
        Span<byte> expect = stackalloc byte[TagBytes];
        Tag(t[..8], expect);
        if (!FixedTimeEquals(expect, t.Slice(8, TagBytes))) return false;
        return BinaryPrimitives.ReadInt64LittleEndian(t) > _nowMs();
    }

    private void Tag(ReadOnlySpan<byte> expiry, Span<byte> dst) => SipHash128.Compute(_key, expiry, dst[..TagBytes]);

    /// <summary>Compares without an early exit, so the time taken says nothing about where a forged tag differs.</summary>
    private static bool FixedTimeEquals(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        if (a.Length != b.Length) return false;
        int diff = 0;
        for (int i = 0; i < a.Length; i++) diff |= a[i] ^ b[i];
        return diff == 0;
    }
}
