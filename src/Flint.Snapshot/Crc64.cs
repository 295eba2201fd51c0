namespace Flint.Snapshot;

/// <summary>
/// CRC-64/XZ (ECMA-182 polynomial, reflected, init and xorout all ones): the trailer that detects a corrupt or
/// partially written state file. Table-driven; the table is built once.
/// </summary>
public static class Crc64
{
    private const ulong Polynomial = 0xC96C5795D7870F42UL; // ECMA-182, reflected
    private static readonly ulong[] Table = BuildTable();

    private static ulong[] BuildTable()
    {
        var t = new ulong[256];
        for (uint i = 0; i < 256; i++)
        {
            ulong c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? (c >> 1) ^ Polynomial : c >> 1;
            t[i] = c;
        }
        return t;
    }

    public static ulong Compute(ReadOnlySpan<byte> data)
    {
        ulong crc = ~0UL;
        foreach (byte b in data) crc = Table[(byte)(crc ^ b)] ^ (crc >> 8);
        return ~crc;
    }
}
