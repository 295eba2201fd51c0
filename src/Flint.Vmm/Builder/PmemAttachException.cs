namespace Flint.Vmm.Builder;

/// <summary>Firecracker's StartMicrovmError::CreatePmemDevice: "Cannot create pmem device: {PmemError}".</summary>
public sealed class PmemAttachException(string pmemError) : Exception("Cannot create pmem device: " + pmemError);
