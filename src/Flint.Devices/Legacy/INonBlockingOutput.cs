namespace Flint.Devices.Legacy;

/// <summary>
/// An output the serial device may write to from a vCPU thread without ever waiting: a write either completes at
/// once or fails (a full FIFO, a full disk) and the bytes are dropped. Checked by type on the byte path, so a
/// failure costs a counter, not an exception.
/// </summary>
public interface INonBlockingOutput
{
    /// <summary>True when every byte was written; false when they were dropped.</summary>
    bool TryWrite(ReadOnlySpan<byte> bytes);
}
