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
/// virtio-pci function with MSI-X. BARs come from the 64-bit MMIO window (<see cref="PciBarAllocator"/>, lowest free
/// first); queue doorbells are KVM ioeventfds, interrupts irqfds on MSI routes (<see cref="KvmMsiVectors"/>).
/// Functions are plugged at build time and, after the start, by the API's hotplug requests; <see cref="Unplug"/>
/// takes one off and gives back its slot, BAR, GSIs, doorbells and fds. Plug and unplug run on the VMM thread.
/// </summary>
public sealed class PciDevices
{
    private readonly IPciVm _vm;
    private readonly GuestMemory _memory;
    private readonly Bus _mmio;
    private readonly EventLoop _loop;
    private readonly List<IDisposable> _owned;
    private readonly KvmGsiRoutes _routes;
    private readonly PciBarAllocator _bars = new(Layout.PciMmio64Start, Layout.PciMmio64Size, VirtioPciLayout.BarSize);
    private readonly List<PciFunction> _functions = [];
    private readonly PciPlacement? _placement;

    /// <param name="owned">The VM's owned list (the builder's, then the VM's: the same list): each function's
    /// transport, vectors and resources are in it until they are unplugged.</param>
    /// <param name="placement">A snapshot restore: the saved slot and BAR of each function the build plugs; null
    /// places every function at the lowest free slot and BAR.</param>
    internal PciDevices(IPciVm vm, GuestMemory memory, Bus mmio, Bus pio, EventLoop loop, List<IDisposable> owned,
        PciPlacement? placement = null)
    {
        _placement = placement;
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

    /// <summary>The plugged functions' transports, in plug order.</summary>
    public List<VirtioPciTransport> Transports { get; } = [];

    /// <summary>The plugged functions, in plug order.</summary>
    public IReadOnlyList<PciFunction> Functions => _functions;

    /// <summary>BARs placed and not given back (tests: an unplug frees its window).</summary>
    public int BarsInUse => _bars.InUse;

    /// <summary>GSIs held by the functions' vectors (tests: an unplug gives them back).</summary>
    public int GsisInUse => _routes.InUse;

    /// <summary>The function whose device is <paramref name="device"/>, or null.</summary>
    public PciFunction? Find(IVirtioDevice device) => _functions.Find(f => ReferenceEquals(f.Transport.Device, device));

    /// <summary>
    /// Plugs <paramref name="device"/> into the first free slot with the lowest free BAR. The device's own event
    /// sources join the event loop; <paramref name="device"/> itself (when disposable) is disposed at unplug.
    /// On failure everything taken so far is given back and the device is left to the caller.
    /// </summary>
    /// <param name="id">The configuration's id of the device (drive_id, iface_id, pmem id; empty for the devices a VM
    /// has one of): with the device type, the key a snapshot saves the function under and a restore places it by.</param>
    public VirtioPciTransport Add(IVirtioDevice device, string id = "") => Plug(device, id).Transport;

    /// <inheritdoc cref="Add"/>
    public PciFunction Plug(IVirtioDevice device, string id = "")
    {
        var key = new PciDeviceKey(device.DeviceType, id);
        ulong bar = 0;
        int placedSlot = 0;
        bool placed = _placement != null && _placement.TryTake(key, out placedSlot, out bar);
        if (placed)
        {
            // A restore: the slot and BAR the guest saw. The loader checked them; a clash here is a bug, not a guest's doing.
            if (Bus.Device(placedSlot) != null) throw new InvalidOperationException($"The snapshot puts {key} in PCI slot {placedSlot}, which is taken.");
            if (!_bars.TryReserve(bar))
                throw new InvalidOperationException($"The snapshot puts the BAR of {key} at 0x{bar:x}, which is taken or outside the PCI 64-bit MMIO window.");
        }
        else
        {
            if (Bus.FreeSlots == 0) throw new PciSlotsExhaustedException();
            if (!_bars.TryAllocate(out bar))
                throw new InvalidOperationException("PCI 64-bit MMIO window exhausted.");
        }
        KvmMsiVectors vectors;
        try { vectors = new KvmMsiVectors(_vm, _routes, device.QueueMaxSizes.Length + 1); }
        catch { _bars.Free(bar); throw; }
        VirtioPciTransport transport;
        try { transport = new VirtioPciTransport(device, _memory, bar, vectors); }
        catch { vectors.Release(); vectors.Dispose(); _bars.Free(bar); throw; }
        _owned.Add(vectors);
        _owned.Add(transport);
        int slot;
        if (placed)
        {
            Bus.AddAt(placedSlot, transport);
            slot = placedSlot;
        }
        else slot = Bus.Add(transport);
        var f = new PciFunction(transport, slot, bar, vectors, key);
        f.Resources.Add(vectors);
        f.Resources.Add(transport);
        if (device is IDisposable d)
        {
            f.Resources.Add(d);
            _owned.Add(d);
        }
        _functions.Add(f);
        Transports.Add(transport);
        try
        {
            _mmio.Insert(transport, bar, VirtioPciLayout.BarSize);
            f.Undo.Add(() => _mmio.Remove(bar, transport));
            for (int q = 0; q < transport.QueueEvents.Length; q++)
            {
                int index = q;
                ulong addr = transport.NotifyAddress(q);
                // Linux writes the queue index as 16 bits; any other width exits to the transport, which rings the same eventfd.
                try
                {
                    _vm.RegisterIoeventfd(transport.QueueEvents[q], addr, 2, null);
                    f.Doorbells.Add((transport.QueueEvents[q], addr));
                }
                catch (KvmException e)
                {
                    Logger.Warn($"ioeventfd for virtio-pci queue {q} at 0x{addr:x} unavailable, using MMIO exits: {e.Message}");
                }
                // A vhost-user backend polls the doorbell itself; the event loop reading it would steal the guest's kicks.
                if (!device.ServedByExternalBackend)
                    AddToLoop(f, transport.QueueEvents[q].Fd, _ => transport.ProcessQueueEvent(index), Flint.Sys.Libc.EPOLLIN);
            }
            if (device is IEventSources sources)
                foreach (var s in sources.EventSources) AddToLoop(f, s.Fd, s.OnReady, s.Events);
        }
        catch
        {
            Unplug(f, disposeDevice: false);
            throw;
        }
        Logger.Debug($"pci: virtio device type {device.DeviceType} at 00:{slot:x2}.0, BAR 0x{bar:x}+0x{VirtioPciLayout.BarSize:x}");
        return f;
    }

    private void AddToLoop(PciFunction f, int fd, Action<uint> handler, uint events)
    {
        _loop.Add(fd, handler, events);
        f.LoopFds.Add(fd);
    }

    /// <summary>
    /// Takes <paramref name="f"/> off the segment: its slot reads as empty from the next configuration cycle, its BAR
    /// leaves the MMIO bus, its doorbells and irqfds are unbound, its routes and GSIs given back, its event-loop fds
    /// removed, then its undo steps run and its resources are disposed (every fd closed). The caller has made sure no
    /// vCPU is inside one of its exits (the VM is paused or quiesced). Idempotent.
    /// </summary>
    public void Unplug(PciFunction f) => Unplug(f, disposeDevice: true);

    private void Unplug(PciFunction f, bool disposeDevice)
    {
        if (f.Unplugged) return;
        f.Unplugged = true;
        // First off the bus: a guest scanning from now on finds an empty slot, and nothing reaches the BAR below.
        if (ReferenceEquals(Bus.Device(f.Slot), f.Transport)) Bus.Remove(f.Slot);
        foreach (var (fd, addr) in f.Doorbells)
        {
            try { _vm.UnregisterIoeventfd(fd, addr, 2, null); }
            catch (KvmException e) { Logger.Warn($"pci: deassigning the doorbell at 0x{addr:x} failed: {e.Message}"); }
        }
        f.Doorbells.Clear();
        foreach (int fd in f.LoopFds) _loop.Remove(fd);
        f.LoopFds.Clear();
        for (int i = f.Undo.Count - 1; i >= 0; i--)
        {
            try { f.Undo[i](); }
            catch (Exception e) when (e is KvmException or Flint.Sys.SysException or InvalidOperationException)
            {
                Logger.Warn($"pci: undoing a resource of 00:{f.Slot:x2}.0 failed: {e.Message}");
            }
        }
        f.Undo.Clear();
        f.Vectors.Release();
        for (int i = f.Resources.Count - 1; i >= 0; i--)
        {
            var r = f.Resources[i];
            _owned.Remove(r);
            // A plug that failed half-way leaves the device to its caller, who made it.
            if (!disposeDevice && ReferenceEquals(r, f.Transport.Device)) continue;
            try { r.Dispose(); }
            catch (Flint.Sys.SysException e) { Logger.Warn($"pci: closing a resource of 00:{f.Slot:x2}.0 failed: {e.Message}"); }
        }
        f.Resources.Clear();
        _bars.Free(f.Bar);
        _functions.Remove(f);
        Transports.Remove(f.Transport);
        Logger.Debug($"pci: 00:{f.Slot:x2}.0 unplugged, BAR 0x{f.Bar:x} freed");
    }
}
