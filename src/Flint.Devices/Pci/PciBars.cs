namespace Flint.Devices.Pci;

/// <summary>
/// The six BAR registers of a type-0 function. The VMM places every BAR (as Firecracker does): the guest can size
/// a BAR (write all ones, read the size mask back) and write the address back, but any other value is ignored, so
/// a hostile or confused guest can never move a BAR onto RAM, onto another device or off the MMIO bus. The read
/// after a sizing write returns the mask once; the next read returns the address again.
/// </summary>
public sealed partial class PciBars
{
    public const int FirstRegister = 4;
    public const int Count = 6;
    private const uint Memory64Bit = 0b100;

    private readonly uint[] _address = new uint[Count];
    private readonly uint[] _sizeMask = new uint[Count];
    private readonly bool[] _sizing = new bool[Count];

    /// <summary>Ignored BAR writes (a value that is neither all ones nor the current address).</summary>
    public long RejectedWrites { get; private set; }

    /// <summary>Lays out a 64-bit memory BAR in registers <paramref name="index"/> and <paramref name="index"/>+1.</summary>
    public void SetMemory64(int index, ulong address, ulong size, bool prefetchable = false)
    {
        if ((uint)index >= Count - 1) throw new ArgumentOutOfRangeException(nameof(index));
        if (size < 16 || (size & (size - 1)) != 0) throw new ArgumentException("BAR size must be a power of two of at least 16 bytes");
        if ((address & (size - 1)) != 0) throw new ArgumentException("BAR address must be aligned to its size");
        if (_sizeMask[index] != 0 || _sizeMask[index + 1] != 0) throw new InvalidOperationException($"BAR {index} is already in use");
        ulong mask = ~(size - 1);
        uint flags = Memory64Bit | (prefetchable ? 0b1000u : 0);
        _address[index] = (uint)address | flags;
        _address[index + 1] = (uint)(address >> 32);
        _sizeMask[index] = (uint)mask | flags;
        _sizeMask[index + 1] = (uint)(mask >> 32);
    }

    public static bool IsBarRegister(int register) => register >= FirstRegister && register < FirstRegister + Count;

    public uint Read(int index)
    {
        if ((uint)index >= Count) return 0;
        if (_sizing[index])
        {
            _sizing[index] = false;
            return _sizeMask[index];
        }
        return _address[index];
    }

    /// <summary>A guest write to BAR register <paramref name="index"/> (a config write already split to one register).</summary>
    public void Write(int index, int offset, ReadOnlySpan<byte> data)
    {
        if ((uint)index >= Count) return;
        if (offset == 0 && data.Length == 4)
        {
            uint v = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(data);
            if (v == 0xffff_ffff) { _sizing[index] = _sizeMask[index] != 0; return; }
            _sizing[index] = false;
            // The address written back after sizing (flag bits are read-only, so compare without them).
            if ((v & ~0xfu) == (_address[index] & ~0xfu) || (_sizeMask[index] == 0 && v == 0)) return;
        }
        _sizing[index] = false;
        RejectedWrites++;
    }

    /// <summary>Base address of the 64-bit BAR at <paramref name="index"/>.</summary>
    public ulong Address64(int index) => ((ulong)_address[index + 1] << 32) | (_address[index] & ~0xfu);
}
