namespace Flint.Vmm;

/// <summary>
/// A pause, resume or start that a vCPU could not carry out: it has exited, or it did not answer within the
/// bounded wait. The message is written for the API's fault_message ("vCPU 1 did not pause within 30 s").
/// </summary>
public sealed class VcpuStateException(string message) : Exception(message);
