using System.Buffers.Binary;
using Flint.Memory;

namespace Flint.Arch.X86;

/// <summary>
/// Intel MultiProcessor Specification 1.4 tables: how a kernel without ACPI learns the CPUs' APIC ids, the
/// IOAPIC and how ISA IRQs are wired. Layout: the 16-byte floating pointer at <see cref="Layout.MpTableStart"/>
/// (last KiB of base memory, a place Linux scans), the configuration table right after it.
/// </summary>
public static class MpTable
{
    public const int MaxVcpus = 254;           // APIC ids 0..253, IOAPIC id = count, 0xff is broadcast
    public const byte SpecRev = 4;             // MP spec 1.4
    public const byte ApicVersion = 0x14;      // integrated xAPIC
    public const byte IoapicVersion = 0x11;
    /// <summary>CPU signature (family 6) and feature flags (FPU | APIC) in processor entries; informational only.</summary>
    public const uint CpuSignature = 0x600, CpuFeatures = 0x201;

    public const int FloatingPointerSize = 16, HeaderSize = 44, ProcessorEntrySize = 20, SmallEntrySize = 8;
    public const byte EntryProcessor = 0, EntryBus = 1, EntryIoapic = 2, EntryIoInterrupt = 3, EntryLocalInterrupt = 4;
    public const byte IntTypeInt = 0, IntTypeNmi = 1, IntTypeExtInt = 3;
    public const byte CpuEnabled = 1, CpuBsp = 2;
    public const byte IsaBusId = 0;

    public static int TableSize(uint vcpuCount) =>
        FloatingPointerSize + HeaderSize + (int)vcpuCount * ProcessorEntrySize
        + SmallEntrySize * (1 + 1 + Layout.IoapicPins + 2);

    /// <summary>Writes both structures; returns the number of configuration table entries.</summary>
    public static int Write(GuestMemory mem, uint vcpuCount)
    {
        ArgumentNullException.ThrowIfNull(mem);
        if (vcpuCount == 0 || vcpuCount > MaxVcpus)
            throw new ArgumentOutOfRangeException(nameof(vcpuCount), $"MP table supports 1..{MaxVcpus} vCPUs, not {vcpuCount}");
        int size = TableSize(vcpuCount);
        if (Layout.MpTableStart + (ulong)size > Layout.MpTableEnd)
            throw new InvalidOperationException($"MP table ({size} bytes) does not fit below 0x{Layout.MpTableEnd:x}");

        var buf = new byte[size];
        var b = buf.AsSpan();
        const ulong configAddr = Layout.MpTableStart + FloatingPointerSize;
        byte ioapicId = (byte)vcpuCount;

        // Configuration table entries, after the header.
        int o = FloatingPointerSize + HeaderSize, count = 0;
        for (uint i = 0; i < vcpuCount; i++, count++)
        {
            var e = b.Slice(o, ProcessorEntrySize);
            e[0] = EntryProcessor;
            e[1] = (byte)i;                                   // local APIC id = vCPU index, as CPUID reports
            e[2] = ApicVersion;
            e[3] = (byte)(CpuEnabled | (i == 0 ? CpuBsp : 0));
            Put32(e, 4, CpuSignature);
            Put32(e, 8, CpuFeatures);
            o += ProcessorEntrySize;
        }
        {
            var e = b.Slice(o, SmallEntrySize);
            e[0] = EntryBus;
            e[1] = IsaBusId;
            "ISA   "u8.CopyTo(e[2..]);
            o += SmallEntrySize; count++;
        }
        {
            var e = b.Slice(o, SmallEntrySize);
            e[0] = EntryIoapic;
            e[1] = ioapicId;
            e[2] = IoapicVersion;
            e[3] = 1;                                         // enabled
            Put32(e, 4, Layout.IoapicAddress);
            o += SmallEntrySize; count++;
        }
        // ISA IRQ i -> IOAPIC pin i, polarity/trigger "conforms to bus" (flags 0): edge, active high for ISA.
        for (int irq = 0; irq < Layout.IoapicPins; irq++, count++)
        {
            o = Interrupt(b, o, EntryIoInterrupt, IntTypeInt, (byte)irq, ioapicId, (byte)irq);
        }
        // Virtual-wire mode: the PIC's output on the BSP's LINT0, NMI on every CPU's LINT1.
        o = Interrupt(b, o, EntryLocalInterrupt, IntTypeExtInt, 0, 0, 0); count++;
        o = Interrupt(b, o, EntryLocalInterrupt, IntTypeNmi, 0, 0xff, 1); count++;

        // Header.
        var h = b.Slice(FloatingPointerSize, HeaderSize);
        "PCMP"u8.CopyTo(h);
        PutU16(h, 4, (ushort)(size - FloatingPointerSize));  // base table length, header included
        h[6] = SpecRev;
        "FLINT   "u8.CopyTo(h[8..]);                          // OEM id, 8 bytes
        "FLINTVM     "u8.CopyTo(h[16..]);                     // product id, 12 bytes
        PutU16(h, 34, (ushort)count);
        Put32(h, 36, Layout.LapicAddress);
        h[7] = Checksum(b[FloatingPointerSize..]);

        // Floating pointer.
        var fp = b[..FloatingPointerSize];
        "_MP_"u8.CopyTo(fp);
        Put32(fp, 4, (uint)configAddr);
        fp[8] = 1;                                            // length in 16-byte units
        fp[9] = SpecRev;
        // feature bytes 1-5 zero: a configuration table is present; IMCR absent (virtual wire)
        fp[10] = Checksum(fp);

        mem.Write(Layout.MpTableStart, buf);
        return count;
    }

    private static int Interrupt(Span<byte> b, int o, byte entryType, byte intType, byte srcIrq, byte dstId, byte dstPin)
    {
        var e = b.Slice(o, SmallEntrySize);
        e[0] = entryType;
        e[1] = intType;
        PutU16(e, 2, 0);                                      // conforms to bus specification
        e[4] = IsaBusId;
        e[5] = srcIrq;
        e[6] = dstId;
        e[7] = dstPin;
        return o + SmallEntrySize;
    }

    /// <summary>The byte that makes <paramref name="b"/> sum to zero (mod 256); the checksum byte must be zero when called.</summary>
    private static byte Checksum(ReadOnlySpan<byte> b)
    {
        byte sum = 0;
        foreach (byte x in b) sum += x;
        return (byte)-sum;
    }

    private static void PutU16(Span<byte> b, int o, ushort v) => BinaryPrimitives.WriteUInt16LittleEndian(b[o..], v);
    private static void Put32(Span<byte> b, int o, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(b[o..], v);
}
