using Flint.Devices;
using Flint.Devices.Legacy;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Block;
using Flint.Kvm;
using Flint.Memory;
using Flint.Sys;
using Flint.Vmm.Logging;

namespace Flint.Vmm;

/// <summary>
/// A built microVM: KVM objects, guest memory, buses, devices and vCPU runners. The builder assembles it;
/// this type runs it (vCPUs + event loop on the calling thread), pauses, resumes and tears it down.
/// </summary>
public sealed class Vmm : IDisposable
{
    private List<IDisposable> _owned = [];

    public required KvmSystem Kvm { get; init; }
    public required Vm Vm { get; init; }
    public required GuestMemory Memory { get; init; }
    public required Bus PioBus { get; init; }
    public required Bus MmioBus { get; init; }
    public required EventLoop EventLoop { get; init; }
    public required VmExit Exit { get; init; }
    public required IReadOnlyList<VcpuRunner> Vcpus
    {
        get => _vcpuGroup.Vcpus;
        init => _vcpuGroup = new VcpuGroup(value);
    }
    private readonly VcpuGroup _vcpuGroup = new([]);
    public required Serial Serial { get; init; }
    public required I8042 I8042 { get; init; }
    public BootTimer? BootTimer { get; init; }
    public required Builder.VirtioDeviceSet Devices { get; init; }
    /// <summary>VMGenID and VMClock; null only for VMs assembled by tests without the builder.</summary>
    public Builder.AcpiDeviceSet? Acpi { get; init; }
    public IReadOnlyList<(string Id, MmioTransport? Transport, VirtioBlock Device)> Blocks => Devices.Blocks;
    /// <summary>The counters every vCPU runner of this VM increments (the builder hands the same object to both).</summary>
    public required VcpuMetrics VcpuMetrics { get; init; }
    public string KernelCmdline { get; init; } = "";

    public bool IsPaused => _vcpuGroup.IsPaused;
    public bool IsStarted { get; private set; }

    internal void Own(IDisposable d) => _owned.Add(d);

    /// <summary>
    /// The builder's owned list becomes this VM's (the same list object, not a copy), so the PCI segment, which holds
    /// it, can add a hot-plugged device's resources and take an unplugged one's out after the build.
    /// </summary>
    internal void TakeOwned(List<IDisposable> owned)
    {
        owned.InsertRange(0, _owned);
        _owned = owned;
    }

    /// <summary>
    /// Runs <paramref name="change"/> with every vCPU parked (each finishes the exit it is handling first), unless the
    /// VM is paused already: a hot-unplug closes fds a vCPU thread could otherwise be about to use. Bounded like
    /// <see cref="Pause"/>; the vCPUs run again afterwards whatever <paramref name="change"/> did.
    /// </summary>
    internal void WithVcpusParked(Action change)
    {
        if (!IsStarted || IsPaused || Vcpus.Count == 0) { change(); return; }
        _vcpuGroup.Pause();
        try { change(); }
        finally { _vcpuGroup.Resume(); }
    }

    /// <summary>Starts every vCPU thread; <paramref name="beforeRun"/> runs on each before its first KVM_RUN.</summary>
    public void StartVcpus(Action? beforeRun = null)
    {
        foreach (var v in Vcpus) v.BeforeRun = beforeRun;
        foreach (var v in Vcpus) v.Start();
        IsStarted = true;
    }

    /// <summary>Starts every vCPU thread parked (a restored VM starts Paused); <paramref name="beforeRun"/> as in <see cref="StartVcpus"/>.</summary>
    public void StartVcpusPaused(Action? beforeRun = null)
    {
        foreach (var v in Vcpus) v.BeforeRun = beforeRun;
        _vcpuGroup.StartPaused();
        IsStarted = true;
    }

    /// <summary>KVM dirty-page logging is on for guest RAM (machine-config or snapshot load track_dirty_pages).</summary>
    public bool TrackDirtyPages { get; init; }

    /// <summary>What this host's KVM can save (probed at build time: /dev/kvm ioctls are not allowed once the VM runs).</summary>
    public Snapshot.KvmSnapshotCaps SnapshotCaps { get; init; } = Snapshot.KvmSnapshotCaps.None;

    /// <summary>Runs the event loop on this thread until the VM exits; returns the process exit code.</summary>
    public int RunUntilExit()
    {
        EventLoop.Run(() => Exit.IsRequested);
        Logger.Info($"Vmm is stopping: {Exit.Reason}");
        Stop();
        return Exit.ExitCode;
    }

    /// <summary>
    /// Parks every vCPU (bounded: a <see cref="VcpuStateException"/> says which vCPU did not answer), then lets the
    /// Async block engines finish what the kernel holds (bounded per drive), so a paused VM has no I/O half-done.
    /// </summary>
    public void Pause()
    {
        _vcpuGroup.Pause();
        foreach (var b in Devices.Blocks)
        {
            if (!b.Device.CompleteInFlight(VirtioBlock.DrainTimeout))
                Logger.Warn($"Pause: drive {b.Id} still has io_uring requests in flight after {VirtioBlock.DrainTimeout.TotalSeconds} s.");
        }
    }

    /// <summary>
    /// Resumes every vCPU. First, as Firecracker's resume_vm kicks its devices: the balloon ends any free page hinting
    /// run with DONE (a run saved in a snapshot, too), so the guest may reuse the pages it hinted.
    /// </summary>
    public void Resume()
    {
        Devices.Balloon?.ResetHintingOnResume();
        _vcpuGroup.Resume();
    }

    public void Stop()
    {
        _vcpuGroup.Stop(TimeSpan.FromSeconds(2));
        Serial.Flush();
    }

    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--)
        {
            try { _owned[i].Dispose(); } catch (SysException) { }
        }
        _owned.Clear();
    }
}
