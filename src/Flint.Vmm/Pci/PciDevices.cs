using Flint.Arch.X86;
using Flint.Devices;
using Flint.Devices.Pci;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Pci;
using Flint.Kvm;
using Flint.Memory;
using Flint.Vmm.Logging;

namespace Flint.Vmm.Pci;

/// <summary>
/// The VM's PCI segment when --enable-pci is given (Firecracker's PciDevices): root bus 0 with the host bridge,
/// ECAM on the MMIO bus at <see cref="Layout.PciMmconfigStart"/>, the 0xCF8 ports, and every virtio device as a
/// virtio-pci function with MSI-X. BARs come from the 64-bit MMIO window, one 512 KiB BAR per device, in attach
/// order; queue doorbells are KVM ioeventfds, interrupts irqfds on MSI routes (<see cref="KvmMsiVectors"/>).
/// </summary>
public sealed class PciDevices
{
    private readonly Vm _vm;
    private readonly GuestMemory _memory;
    private readonly Bus _mmio;
    private readonly EventLoop _loop;
    private readonly List<IDisposable> _owned;
    private readonly KvmGsiRoutes _routes;
    private ulong _nextBar = Layout.PciMmio64Start;

    internal PciDevices(Vm vm, GuestMemory memory, Bus mmio, Bus pio, EventLoop loop, List<IDisposable> owned)
    {
        _vm = vm;
        _memory = memory;
        _mmio = mmio;
        _loop = loop;
        _owned = owned;
        _routes = new KvmGsiRoutes(vm);
        foreach (var r in memory.Regions)
            if (r.GuestBase + r.Size > Layout.PciMmio64Start)
                throw new InvalidOperationException("Guest memory reaches the PCI 64-bit MMIO window (256 GiB).");
        mmio.Insert(new PciConfigMmio(Bus), Ecam.BaseAddress, Ecam.Size);
        pio.Insert(new PciConfigIo(Bus), PciConfigIo.BasePort, PciConfigIo.PortCount);
        Logger.Info($"pci: adding PCI segment: id=0x0, PCI MMIO config address: 0x{Ecam.BaseAddress:x}, mem64 area: "
            + $"[0x{Layout.PciMmio64Start:x}-0x{Layout.PciMmio64Start + Layout.PciMmio64Size - 1:x}] IO area: [0xcf8-0xcff]");
    }

    public PciRootBus Bus { get; } = new();

    /// <summary>What an ACPI MCFG entry describes: segment 0, bus 0, at Firecracker's address.</summary>
    public static PciEcamWindow Ecam => new(Layout.PciMmconfigStart, 0, 0, 0);

    public List<VirtioPciTransport> Transports { get; } = [];

    public VirtioPciTransport Add(IVirtioDevice device)
    {
        ulong bar = _nextBar;
        if (bar + VirtioPciLayout.BarSize > Layout.PciMmio64Start + Layout.PciMmio64Size)
            throw new InvalidOperationException("PCI 64-bit MMIO window exhausted.");
        var vectors = new KvmMsiVectors(_vm, _routes, device.QueueMaxSizes.Length + 1);
        _owned.Add(vectors);
        var transport = new VirtioPciTransport(device, _memory, bar, vectors);
        _owned.Add(transport);
        int slot = Bus.Add(transport);
        _nextBar += VirtioPciLayout.BarSize;
        _mmio.Insert(transport, bar, VirtioPciLayout.BarSize);
        Transports.Add(transport);
        for (int q = 0; q < transport.QueueEvents.Length; q++)
        {
            int index = q;
            ulong addr = transport.NotifyAddress(q);
            // Linux writes the queue index as 16 bits; any other width exits to the transport, which rings the same eventfd.
            try { _vm.RegisterIoeventfd(transport.QueueEvents[q], addr, 2, null); }
            catch (KvmException e)
            {
                Logger.Warn($"ioeventfd for virtio-pci queue {q} at 0x{addr:x} unavailable, using MMIO exits: {e.Message}");
            }
            _loop.Add(transport.QueueEvents[q].Fd, _ => transport.ProcessQueueEvent(index));
        }
        Logger.Debug($"pci: virtio device type {device.DeviceType} at 00:{slot:x2}.0, BAR 0x{bar:x}+0x{VirtioPciLayout.BarSize:x}");
        return transport;
    }
}
