using System.Buffers.Binary;
using System.Text;

namespace Flint.Arch.X86.Acpi;

/// <summary>
/// A small ACPI Machine Language writer (ACPI 6.5 chapter 20): just the terms Flint's DSDT needs, each returning its
/// encoded bytes so terms nest by composition. The encodings are the ones Firecracker's acpi-tables crate emits
/// (integers keep the width the caller chose, as its <c>u8</c>/<c>u32</c> do), so the DSDT a guest parses from Flint
/// is Firecracker's byte for byte wherever the inputs agree. Runs once per boot: allocation does not matter here.
/// </summary>
public static class Aml
{
    public const byte ZeroOp = 0x00, OneOp = 0x01, NameOp = 0x08, BytePrefix = 0x0a, WordPrefix = 0x0b, DWordPrefix = 0x0c;
    public const byte StringPrefix = 0x0d, QWordPrefix = 0x0e, BufferOp = 0x11, PackageOp = 0x12, MethodOp = 0x14;
    public const byte DualNamePrefix = 0x2e, MultiNamePrefix = 0x2f, RootChar = (byte)'\\', ExtOpPrefix = 0x5b;
    public const byte DeviceOp = 0x82, Arg0Op = 0x68, NotifyOp = 0x86, LEqualOp = 0x93, IfOp = 0xa0, ReturnOp = 0xa4;

    public static byte[] Zero => [ZeroOp];
    public static byte[] One => [OneOp];
    public static byte[] Byte(byte v) => [BytePrefix, v];
    public static byte[] Word(ushort v) { var b = new byte[3]; b[0] = WordPrefix; BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(1), v); return b; }
    public static byte[] DWord(uint v) { var b = new byte[5]; b[0] = DWordPrefix; BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(1), v); return b; }
    public static byte[] QWord(ulong v) { var b = new byte[9]; b[0] = QWordPrefix; BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(1), v); return b; }

    /// <summary>A NUL-terminated ASCII string constant; only printable ASCII is accepted (AML strings are 0x01-0x7f).</summary>
    public static byte[] String(string s)
    {
        foreach (char c in s)
            if (c < 0x20 || c > 0x7e) throw new ArgumentException($"AML string \"{s}\" holds a character outside printable ASCII");
        return [StringPrefix, .. Encoding.ASCII.GetBytes(s), 0];
    }

    /// <summary>
    /// A NameString: "ABCD", "_SB_.COM1" or "\_SB_.VGEN". Every segment must be exactly four characters (pad with '_'),
    /// the first an upper-case letter or '_', the rest upper-case letters, digits or '_' (ACPI NameSeg).
    /// </summary>
    public static byte[] NameString(string path)
    {
        bool root = path.StartsWith('\\');
        var segs = (root ? path[1..] : path).Split('.');
        var o = new List<byte>(2 + segs.Length * 4);
        if (root) o.Add(RootChar);
        if (segs.Length == 2) o.Add(DualNamePrefix);
        else if (segs.Length > 2) { o.Add(MultiNamePrefix); o.Add(checked((byte)segs.Length)); }
        foreach (var s in segs)
        {
            if (s.Length != 4 || !IsLeadChar(s[0]) || !IsNameChar(s[1]) || !IsNameChar(s[2]) || !IsNameChar(s[3]))
                throw new ArgumentException($"AML name segment \"{s}\" of \"{path}\" is not four name characters");
            foreach (char c in s) o.Add((byte)c);
        }
        return [.. o];
    }

    private static bool IsLeadChar(char c) => c is (>= 'A' and <= 'Z') or '_';
    private static bool IsNameChar(char c) => IsLeadChar(c) || c is >= '0' and <= '9';

    /// <summary>
    /// PkgLength for <paramref name="dataLength"/> bytes that follow it; the encoded length counts itself (20.2.4):
    /// one byte up to 63, else a lead byte (count of following bytes in bits 6-7, low nibble of the length) and
    /// 1-3 more bytes of the length.
    /// </summary>
    public static byte[] PkgLength(int dataLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(dataLength);
        if (dataLength + 1 <= 0x3f) return [(byte)(dataLength + 1)];
        for (int extra = 1; extra <= 3; extra++)
        {
            int total = dataLength + 1 + extra;
            if (total < 1 << (4 + 8 * extra))
            {
                var b = new byte[1 + extra];
                b[0] = (byte)((extra << 6) | (total & 0xf));
                for (int i = 1; i <= extra; i++) b[i] = (byte)(total >> (4 + 8 * (i - 1)));
                return b;
            }
        }
        throw new ArgumentOutOfRangeException(nameof(dataLength), "AML package longer than 2^28 bytes");
    }

    public static byte[] Name(string name, byte[] value) => [NameOp, .. NameString(name), .. value];

    public static byte[] Package(params byte[][] elements)
    {
        byte[] body = [checked((byte)elements.Length), .. Concat(elements)];
        return [PackageOp, .. PkgLength(body.Length), .. body];
    }

    public static byte[] Device(string path, params byte[][] children)
    {
        byte[] body = [.. NameString(path), .. Concat(children)];
        return [ExtOpPrefix, DeviceOp, .. PkgLength(body.Length), .. body];
    }

    public static byte[] Method(string name, int argCount, bool serialized, params byte[][] terms)
    {
        if ((uint)argCount > 7) throw new ArgumentOutOfRangeException(nameof(argCount));
        byte flags = (byte)(argCount | (serialized ? 1 << 3 : 0));
        byte[] body = [.. NameString(name), flags, .. Concat(terms)];
        return [MethodOp, .. PkgLength(body.Length), .. body];
    }

    public static byte[] Return(byte[] value) => [ReturnOp, .. value];
    public static byte[] If(byte[] predicate, params byte[][] terms)
    {
        byte[] body = [.. predicate, .. Concat(terms)];
        return [IfOp, .. PkgLength(body.Length), .. body];
    }
    public static byte[] Equal(byte[] a, byte[] b) => [LEqualOp, .. a, .. b];
    public static byte[] Arg(int n) => (uint)n <= 6 ? [(byte)(Arg0Op + n)] : throw new ArgumentOutOfRangeException(nameof(n));
    public static byte[] Notify(string path, byte[] value) => [NotifyOp, .. NameString(path), .. value];

    /// <summary>
    /// An EISA id ("PNP0501") as the DWord _HID form: three compressed letters and four hex digits, byte-swapped
    /// (ACPI 6.5 section 19.6.35, EISAID macro).
    /// </summary>
    public static byte[] EisaId(string id)
    {
        if (id.Length != 7 || id[..3].Any(c => c is < 'A' or > 'Z') || !uint.TryParse(id[3..], System.Globalization.NumberStyles.HexNumber, null, out uint product))
            throw new ArgumentException($"\"{id}\" is not an EISA id (three letters A-Z, four hex digits)");
        uint v = ((uint)(id[0] - 0x40) << 26) | ((uint)(id[1] - 0x40) << 21) | ((uint)(id[2] - 0x40) << 16) | product;
        return DWord(BinaryPrimitives.ReverseEndianness(v));
    }

    /// <summary>
    /// ResourceTemplate(): a Buffer holding the descriptors and an End Tag with a zero checksum (meaning "not
    /// checked", 6.4.2.9). The buffer size is an integer term of the smallest width, as Firecracker writes it.
    /// </summary>
    public static byte[] ResourceTemplate(params byte[][] descriptors)
    {
        byte[] content = [.. Concat(descriptors), 0x79, 0];
        byte[] size = content.Length <= byte.MaxValue ? Byte((byte)content.Length) : Word(checked((ushort)content.Length));
        byte[] body = [.. size, .. content];
        return [BufferOp, .. PkgLength(body.Length), .. body];
    }

    /// <summary>Extended Interrupt descriptor (6.4.3.6) with one interrupt number.</summary>
    public static byte[] Interrupt(bool consumer, bool edgeTriggered, bool activeLow, bool shared, uint gsi)
    {
        var b = new byte[9];
        b[0] = 0x89;
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(1), 6);
        b[3] = (byte)((shared ? 8 : 0) | (activeLow ? 4 : 0) | (edgeTriggered ? 2 : 0) | (consumer ? 1 : 0));
        b[4] = 1;
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(5), gsi);
        return b;
    }

    /// <summary>I/O port descriptor (6.4.2.5), 16-bit decode.</summary>
    public static byte[] Io(ushort min, ushort max, byte alignment, byte length)
    {
        var b = new byte[8];
        b[0] = 0x47;
        b[1] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(2), min);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(4), max);
        b[6] = alignment;
        b[7] = length;
        return b;
    }

    /// <summary>32-bit fixed memory range descriptor (6.4.3.4).</summary>
    public static byte[] Memory32Fixed(bool readWrite, uint baseAddress, uint length)
    {
        var b = new byte[12];
        b[0] = 0x86;
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(1), 9);
        b[3] = readWrite ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), baseAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), length);
        return b;
    }

    /// <summary>
    /// QWord address space descriptor (6.4.3.5.1) for memory [min, max], min and max fixed, no translation;
    /// cacheable as Firecracker's AddressSpaceCacheable::Cacheable (type-specific flags bits 1-2 = 1).
    /// </summary>
    public static byte[] QWordMemory(bool cacheable, bool readWrite, ulong min, ulong max)
    {
        if (min > max) throw new ArgumentException($"memory range 0x{min:x}-0x{max:x} is empty");
        var b = new byte[46];
        b[0] = 0x8a;
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(1), 43);
        b[3] = 0;                                 // resource type: memory
        b[4] = (1 << 2) | (1 << 3);               // min fixed, max fixed
        b[5] = (byte)(((cacheable ? 1 : 0) << 1) | (readWrite ? 1 : 0));
        // granularity 0 at 6, min at 14, max at 22, translation 0 at 30, length at 38
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(14), min);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(22), max);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(38), max - min + 1);
        return b;
    }

    /// <summary>
    /// Buffer(): BufferOp, PkgLength, the size as an integer term of the smallest width (as Firecracker's usize), the bytes.
    /// </summary>
    public static byte[] Buffer(byte[] data)
    {
        byte[] size = data.Length <= byte.MaxValue ? Byte((byte)data.Length) : Word(checked((ushort)data.Length));
        byte[] body = [.. size, .. data];
        return [BufferOp, .. PkgLength(body.Length), .. body];
    }

    /// <summary>Word address space descriptor (6.4.3.5.3) for bus numbers [min, max], min and max fixed.</summary>
    public static byte[] WordBusNumber(ushort min, ushort max) => WordAddressSpace(2, 0, min, max);

    /// <summary>Word address space descriptor for I/O ports [min, max], min and max fixed, "entire range" (flags 3).</summary>
    public static byte[] WordIo(ushort min, ushort max) => WordAddressSpace(1, 3, min, max);

    private static byte[] WordAddressSpace(byte resourceType, byte typeFlags, ushort min, ushort max)
    {
        if (min > max) throw new ArgumentException($"range 0x{min:x}-0x{max:x} is empty");
        var b = new byte[16];
        b[0] = 0x88;
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(1), 13);
        b[3] = resourceType;
        b[4] = (1 << 2) | (1 << 3);               // min fixed, max fixed
        b[5] = typeFlags;
        // granularity 0 at 6, min at 8, max at 10, translation 0 at 12, length at 14
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(8), min);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(10), max);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(14), (ushort)(max - min + 1));
        return b;
    }

    public static byte[] Concat(params byte[][] parts)
    {
        int n = 0;
        foreach (var p in parts) n += p.Length;
        var o = new byte[n];
        int i = 0;
        foreach (var p in parts) { p.CopyTo(o, i); i += p.Length; }
        return o;
    }
}
