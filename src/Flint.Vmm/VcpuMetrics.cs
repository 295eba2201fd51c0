namespace Flint.Vmm;

/// <summary>Firecracker's vcpu metrics group; updated with Interlocked from every vCPU thread.</summary>
public sealed class VcpuMetrics
{
    public long ExitIoIn, ExitIoOut, ExitMmioRead, ExitMmioWrite, Failures, KvmclockCtrlFails;
}
