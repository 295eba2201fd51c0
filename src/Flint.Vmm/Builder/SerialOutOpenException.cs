namespace Flint.Vmm.Builder;

/// <summary>
/// PUT /serial's serial_out_path could not be opened at InstanceStart. Firecracker reports it through its device
/// manager's first error variant, so the fault reads "Start microvm error: Failed to create device manager: Error
/// with EventFd: No such file or directory (os error 2)"; <see cref="Rpc.FaultText.StartFailure"/> words it so.
/// </summary>
public sealed class SerialOutOpenException(string osError) : IOException(osError);
