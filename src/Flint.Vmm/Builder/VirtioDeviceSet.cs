using Flint.Arch.X86;
using Flint.Devices;
using Flint.Devices.Mmds;
using Flint.Devices.RateLimiting;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Balloon;
using Flint.Devices.Virtio.Block;
using Flint.Devices.Virtio.Net;
using Flint.Devices.Virtio.Rng;
using Flint.Devices.Virtio.Vsock;
using Flint.Kvm;
using Flint.Memory;
using Flint.Vmm.Config;
using Flint.Vmm.Logging;

namespace Flint.Vmm.Builder;

/// <summary>
/// The VM's virtio-mmio devices. <see cref="Add"/> gives a device the next 4 KiB slot and legacy GSI, its interrupt
/// (irqfd), its queue doorbells (ioeventfds polled by the event loop), its own fds (tap, timers, sockets) and its
/// `virtio_mmio.device=` entry on the kernel command line.
/// </summary>
public sealed class VirtioDeviceSet
{
    private readonly IVmEventFds _vm;
    private readonly GuestMemory _memory;
    private readonly Bus _mmio;
    private readonly EventLoop _loop;
    private readonly KernelCmdline _cmdline;
    private readonly List<IDisposable> _owned;
    private int _nextSlot;

    internal VirtioDeviceSet(IVmEventFds vm, GuestMemory memory, Bus mmio, EventLoop loop, KernelCmdline cmdline, List<IDisposable> owned)
    {
        _vm = vm;
        _memory = memory;
        _mmio = mmio;
        _loop = loop;
        _cmdline = cmdline;
        _owned = owned;
    }

    /// <summary>The PCI segment with --enable-pci (every device then goes there instead of a virtio-mmio slot); else null.</summary>
    public Pci.PciDevices? Pci { get; internal set; }

    public List<(string Id, MmioTransport? Transport, VirtioBlock Device)> Blocks { get; } = [];
    /// <summary>Drives served by a vhost-user backend (socket), in the order they were attached.</summary>
    public List<Flint.Devices.Virtio.VhostUser.VhostUserBlock> VhostUserBlocks { get; } = [];
    public List<(string Id, VirtioNet Device, MmdsNetworkStack? Mmds, RateLimiter Rx, RateLimiter Tx)> Nets { get; } = [];
    public VirtioVsock? Vsock { get; internal set; }
    public VirtioRng? Rng { get; internal set; }
    public VirtioBalloon? Balloon { get; internal set; }
    public List<Flint.Devices.Virtio.Pmem.VirtioPmem> Pmems { get; } = [];
    /// <summary>Each pmem device's KVM memory slot (a hot-plugged one takes the lowest free slot; an unplug frees it).</summary>
    public Dictionary<Flint.Devices.Virtio.Pmem.VirtioPmem, uint> PmemKvmSlots { get; } = [];
    /// <summary>The virtio-mem device (memory hotplug), when configured.</summary>
    public Flint.Devices.Virtio.Mem.VirtioMem? Memory { get; internal set; }

    /// <summary>Every transport in slot order (MMIO address order): snapshots save and restore them in this order.</summary>
    public List<MmioTransport> Transports { get; } = [];

    /// <summary>Each transport's MMIO window and GSI, in the same order (the DSDT describes them).</summary>
    public List<(ulong Address, uint Gsi)> Windows { get; } = [];

    /// <summary>
    /// Takes the next legacy GSI for a device that is not virtio-mmio (VMGenID, VMClock), as Firecracker's GSI
    /// allocator hands them out after the virtio devices; its MMIO slot stays unused.
    /// </summary>
    public uint ReserveLegacyGsi()
    {
        int slot = _nextSlot;
        if (slot >= Layout.VirtioMmioSlotCount)
            throw new ConfigException($"No legacy interrupt line left: {Layout.VirtioMmioSlotCount} GSIs ({Layout.FirstVirtioIrq}-{Layout.LastVirtioIrq}) serve the virtio devices, VMGenID and VMClock together.");
        _nextSlot++;
        return Layout.VirtioIrq(slot);
    }

    /// <summary>Attaches <paramref name="device"/>; returns its MMIO transport, or null when it went onto the PCI segment.</summary>
    /// <param name="id">The configuration's id of the device, when it has one: on the PCI segment it names the
    /// function in a snapshot (<see cref="Pci.PciDeviceKey"/>).</param>
    public MmioTransport? Add(IVirtioDevice device, string id = "")
    {
        if (Pci != null)
        {
            // The segment owns the device from here (disposed at unplug or with the VM) and polls its event sources.
            try { Pci.Add(device, id); }
            catch { (device as IDisposable)?.Dispose(); throw; }
            return null;
        }
        if (device is IDisposable d) _owned.Add(d);
        int slot = _nextSlot++;
        ulong addr = Layout.VirtioMmioAddress(slot);
        uint irq = Layout.VirtioIrq(slot);
        var transport = new MmioTransport(device, _memory, VmBuilder.NewIrq(_vm, irq, _owned));
        _owned.Add(transport);
        Transports.Add(transport);
        Windows.Add((addr, irq));
        _mmio.Insert(transport, addr, MmioTransport.SlotSize);
        for (int q = 0; q < transport.QueueEvents.Length; q++)
        {
            int index = q;
            try { _vm.RegisterIoeventfd(transport.QueueEvents[q], addr + MmioTransport.NotifyAddress, 4, (ulong)q); }
            catch (KvmException e)
            {
                // Without ioeventfd the notify write exits to the VMM, and the transport rings the same eventfd.
                Logger.Warn($"ioeventfd for virtio queue {q} at 0x{addr:x} unavailable, using MMIO exits: {e.Message}");
            }
            // A vhost-user backend polls the doorbell itself; the event loop reading it would steal the guest's kicks.
            if (!device.ServedByExternalBackend) _loop.Add(transport.QueueEvents[q].Fd, _ => transport.ProcessQueueEvent(index));
        }
        if (device is IEventSources sources)
            foreach (var s in sources.EventSources) _loop.Add(s);
        _cmdline.AppendVirtioMmioDevice(addr, irq);
        return transport;
    }
}
