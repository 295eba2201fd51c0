namespace Flint.Devices;

/// <summary>
/// A device on the PIO or MMIO bus. Offsets are relative to the base the device was inserted at.
/// Called on vCPU threads: implementations must not allocate and must lock what the event loop also touches.
/// </summary>
public interface IBusDevice
{
    void Read(ulong offset, Span<byte> data);
    void Write(ulong offset, ReadOnlySpan<byte> data);
}
