using Flint.Devices.Metrics;

namespace Flint.Vmm;

/// <summary>
/// Firecracker's vcpu metrics group (src/vmm/src/logger/metrics.rs, VcpuMetrics); updated with Interlocked from every
/// vCPU thread. The <c>*_agg</c> objects time each I/O-port and MMIO exit's handling by the bus, as Firecracker's
/// vcpu.rs does.
/// </summary>
public sealed class VcpuMetrics
{
    public long ExitIoIn, ExitIoOut, ExitMmioRead, ExitMmioWrite, Failures, KvmclockCtrlFails;

    public readonly LatencyAggregate ExitIoInAgg = new(), ExitIoOutAgg = new(), ExitMmioReadAgg = new(), ExitMmioWriteAgg = new();
}
