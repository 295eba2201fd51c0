using Flint.Devices.Metrics;
using Flint.Devices;
using Flint.Kvm;

namespace Flint.Vmm;

/// <summary>What the vCPU loop does after an exit.</summary>
public enum VcpuExitAction
{
    /// <summary>Handled: run the vCPU again.</summary>
    Continue,
    /// <summary>This vCPU is done; <see cref="VmExit"/> has been told why.</summary>
    Stop,
}

/// <summary>
/// Handles one decoded vCPU exit: IO and MMIO go to their bus, the guest's end (HLT, shutdown, system event)
/// and KVM failures end the VM through <see cref="VmExit"/>. Knows nothing of KVM fds or threads, so every case
/// is tested with hand-made <see cref="VcpuExit"/>s. The IO and MMIO paths allocate nothing.
/// </summary>
public sealed class VcpuExitHandler
{
    private readonly uint _id;
    private readonly Bus _pio, _mmio;
    private readonly VmExit _exit;
    private readonly VcpuMetrics _metrics;
    private readonly Func<string> _describeCpuState;

    /// <param name="describeCpuState">Registers for the triple-fault log line (a rare exit: may allocate).</param>
    public VcpuExitHandler(uint vcpuId, Bus pio, Bus mmio, VmExit exit, VcpuMetrics metrics, Func<string>? describeCpuState = null)
    {
        _id = vcpuId;
        _pio = pio;
        _mmio = mmio;
        _exit = exit;
        _metrics = metrics;
        _describeCpuState = describeCpuState ?? (() => "");
    }

    public VcpuExitAction Handle(in VcpuExit e)
    {
        switch (e.Reason)
        {
            case ExitReason.Io:
            {
                ushort port = (ushort)e.Address;
                int size = e.Size;
                Span<byte> data = e.Data;
                // Each exit's bus work is timed into vcpu.exit_*_agg, as Firecracker's vcpu.rs does.
                long start = LatencyAggregate.Start();
                if (e.IsWrite)
                {
                    Interlocked.Increment(ref _metrics.ExitIoOut);
                    for (int off = 0; off + size <= data.Length; off += size) _pio.Write(port, data.Slice(off, size));
                    _metrics.ExitIoOutAgg.RecordSince(start);
                }
                else
                {
                    Interlocked.Increment(ref _metrics.ExitIoIn);
                    for (int off = 0; off + size <= data.Length; off += size) _pio.Read(port, data.Slice(off, size));
                    _metrics.ExitIoInAgg.RecordSince(start);
                }
                return _exit.IsRequested ? VcpuExitAction.Stop : VcpuExitAction.Continue;
            }
            case ExitReason.Mmio:
            {
                long start = LatencyAggregate.Start();
                if (e.IsWrite)
                {
                    Interlocked.Increment(ref _metrics.ExitMmioWrite);
                    _mmio.Write(e.Address, e.Data);
                    _metrics.ExitMmioWriteAgg.RecordSince(start);
                }
                else
                {
                    Interlocked.Increment(ref _metrics.ExitMmioRead);
                    _mmio.Read(e.Address, e.Data);
                    _metrics.ExitMmioReadAgg.RecordSince(start);
                }
                return _exit.IsRequested ? VcpuExitAction.Stop : VcpuExitAction.Continue;
            }
            case ExitReason.Intr:
                return VcpuExitAction.Continue;
            case ExitReason.Hlt:
                // With the in-kernel irqchip KVM handles HLT itself; an HLT exit means the guest is done.
                _exit.Request(ExitCodes.Ok, $"vCPU {_id} halted");
                return VcpuExitAction.Stop;
            case ExitReason.Shutdown:
                // Triple fault: how a guest without another reset path reboots. Where it was says whether it was
                // meant (a reboot path) or a crash, so it goes in the log line.
                _exit.Request(ExitCodes.Ok, $"vCPU {_id} received KVM_EXIT_SHUTDOWN (guest reboot or triple fault) {_describeCpuState()}");
                return VcpuExitAction.Stop;
            case ExitReason.SystemEvent:
            {
                var type = (SystemEventType)e.Detail;
                _exit.Request(type is SystemEventType.Shutdown or SystemEventType.Reset ? ExitCodes.Ok : ExitCodes.GenericError,
                    $"vCPU {_id} received system event {type}");
                return VcpuExitAction.Stop;
            }
            case ExitReason.InternalError:
                Interlocked.Increment(ref _metrics.Failures);
                _exit.Request(ExitCodes.GenericError, $"KVM internal error on vCPU {_id}. Suberror: {e.Detail}");
                return VcpuExitAction.Stop;
            case ExitReason.FailEntry:
                Interlocked.Increment(ref _metrics.Failures);
                _exit.Request(ExitCodes.GenericError, $"KVM_EXIT_FAIL_ENTRY on vCPU {_id}: hardware entry failure reason 0x{e.Detail:x}");
                return VcpuExitAction.Stop;
            default:
                Interlocked.Increment(ref _metrics.Failures);
                _exit.Request(ExitCodes.GenericError, $"Unexpected exit reason on vCPU {_id}: {(uint)e.Reason}");
                return VcpuExitAction.Stop;
        }
    }
}
