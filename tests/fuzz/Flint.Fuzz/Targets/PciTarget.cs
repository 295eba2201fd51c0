using System.Buffers.Binary;
using Flint.Devices.Pci;
using Flint.Devices.Pci.Msix;
using Flint.Devices.Virtio.Pci;
using Flint.Devices.Virtio.Rng;
using Flint.Memory;

namespace Flint.Fuzz.Targets;

/// <summary>
/// The guest's side of --enable-pci: a stream of config cycles (ECAM and the 0xCF8 ports) and BAR accesses of any
/// width and offset against a virtio-rng virtio-pci function and its MSI-X table. Each op is 11 bytes:
/// kind, width (1-8), a 32-bit offset, a 32-bit value, and one byte selecting a queue doorbell to serve. No op may
/// throw, and the invariants a hostile guest must never break are checked after every input: BAR 0 stays where the
/// VMM put it, no vector fires while its route is disabled, the host bridge keeps its identity.
/// </summary>
public sealed class PciTarget : IFuzzTarget
{
    private const ulong Bar = 0x40_0000_0000;
    private const int OpSize = 11;

    private sealed class Vectors(int count) : IMsiVectors
    {
        public readonly bool[] Enabled = new bool[count];
        public int Count { get; } = count;
        public bool Route(int index, MsiMessage message, bool enabled) { Enabled[index] = enabled; return true; }
        public void Trigger(int index)
        {
            if (!Enabled[index]) throw new FuzzInvariantException($"vector {index} fired while its route was disabled");
        }
    }

    public string Name => "pci";
    public string Description => "ECAM/0xCF8 config cycles and BAR accesses (any width/offset) against a virtio-pci rng function with MSI-X";
    public bool IsAvailable(out string? reason) { reason = null; return true; }

    public void Run(ReadOnlySpan<byte> input)
    {
        using var mem = GuestMemory.Create([(0UL, 0x10000UL)]);
        using var rng = new VirtioRng();
        var vectors = new Vectors(2);
        using var t = new VirtioPciTransport(rng, mem, Bar, vectors);
        var bus = new PciRootBus();
        int slot = bus.Add(t);
        var ecam = new PciConfigMmio(bus);
        var io = new PciConfigIo(bus);
        Span<byte> buf = stackalloc byte[8];
        for (int at = 0; at + OpSize <= input.Length && at < 64 * OpSize; at += OpSize)
        {
            var op = input.Slice(at, OpSize);
            int width = 1 + (op[1] & 7);
            uint offset = BinaryPrimitives.ReadUInt32LittleEndian(op[2..]);
            BinaryPrimitives.WriteUInt64LittleEndian(buf, BinaryPrimitives.ReadUInt32LittleEndian(op[6..]) * 0x1_0000_0001UL);
            var data = buf[..width];
            switch (op[0] % 7)
            {
                case 0: ecam.Read(((ulong)slot << 15) | (offset & 0xfff), data); break;
                case 1: ecam.Write(((ulong)slot << 15) | (offset & 0xfff), data); break;
                case 2: ecam.Read(offset, data); break;
                case 3: t.Read(offset % 0x80000, data); break;
                case 4: t.Write(offset % 0x80000, data); break;
                case 5: io.Write(offset & 7, data); break;
                default: io.Read(offset & 7, data); break;
            }
            if ((op[10] & 0x80) != 0) t.ProcessQueueEvent(op[10] & 1);
        }
        Span<byte> four = stackalloc byte[4];
        ecam.Read(((ulong)slot << 15) | 0x10, four);
        uint lo = BinaryPrimitives.ReadUInt32LittleEndian(four);
        ecam.Read(((ulong)slot << 15) | 0x14, four);
        uint hi = BinaryPrimitives.ReadUInt32LittleEndian(four);
        // A sizing write leaves one read of the mask; read again for the address.
        if ((((ulong)hi << 32) | (lo & ~0xfu)) != Bar)
        {
            ecam.Read(((ulong)slot << 15) | 0x10, four);
            lo = BinaryPrimitives.ReadUInt32LittleEndian(four);
            ecam.Read(((ulong)slot << 15) | 0x14, four);
            hi = BinaryPrimitives.ReadUInt32LittleEndian(four);
            if ((((ulong)hi << 32) | (lo & ~0xfu)) != Bar) throw new FuzzInvariantException($"BAR 0 moved to 0x{hi:x8}{lo:x8}");
        }
        ecam.Read(0, four);
        if (BinaryPrimitives.ReadUInt32LittleEndian(four) != 0x0d57_8086) throw new FuzzInvariantException("host bridge identity changed");
    }

    public IEnumerable<(string Name, byte[] Data)> Seeds()
    {
        static byte[] Ops(params (byte Kind, byte Width, uint Offset, uint Value, byte Kick)[] ops)
        {
            var b = new byte[ops.Length * OpSize];
            for (int i = 0; i < ops.Length; i++)
            {
                var s = b.AsSpan(i * OpSize);
                s[0] = ops[i].Kind; s[1] = (byte)(ops[i].Width - 1);
                BinaryPrimitives.WriteUInt32LittleEndian(s[2..], ops[i].Offset);
                BinaryPrimitives.WriteUInt32LittleEndian(s[6..], ops[i].Value);
                s[10] = ops[i].Kick;
            }
            return b;
        }
        // BAR sizing, capability pointer, MSI-X enable, then a driver bring-up through common cfg.
        yield return ("bar-sizing", Ops((1, 4, 0x10, 0xffff_ffff, 0), (0, 4, 0x10, 0, 0), (1, 4, 0x10, 4, 0), (0, 1, 0x34, 0, 0)));
        yield return ("bring-up", Ops((1, 2, 0x7e, 0x8000, 0), (4, 4, 0x8000, 0xfee0_0000, 0), (4, 4, 0x800c, 0, 0),
            (4, 1, 0x14, 1, 0), (4, 1, 0x14, 3, 0), (4, 4, 0x08, 1, 0), (4, 4, 0x0c, 1, 0), (4, 1, 0x14, 11, 0),
            (4, 2, 0x1a, 0, 0), (4, 2, 0x1c, 1, 0), (4, 1, 0x14, 15, 0), (4, 2, 0x6000, 0, 0x80)));
        yield return ("cf8", Ops((5, 4, 0, 0x8000_0800, 0), (6, 4, 4, 0, 0), (6, 2, 6, 0, 0), (5, 1, 3, 0xff, 0)));
    }
}
