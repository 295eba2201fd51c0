using Flint.Devices.Pci.Msix;
using Flint.Kvm;
using Flint.Sys;

namespace Flint.Vmm.Pci;

/// <summary>
/// One function's MSI-X vectors over KVM: a GSI and an eventfd per vector, the eventfd bound to the GSI with an irqfd
/// for the VM's lifetime, and the GSI's MSI route present only while the table says the vector may be delivered.
/// <see cref="Trigger"/> is one eventfd write: no VMM exit, no allocation.
/// </summary>
public sealed class KvmMsiVectors : IMsiVectors, IDisposable
{
    private readonly IPciVm _vm;
    private readonly KvmGsiRoutes _routes;
    private readonly uint[] _gsi;
    private readonly EventFd[] _events;
    private bool _released;

    public KvmMsiVectors(IPciVm vm, KvmGsiRoutes routes, int count)
    {
        _vm = vm;
        _routes = routes;
        _gsi = new uint[count];
        _events = new EventFd[count];
        try
        {
            for (int i = 0; i < count; i++)
            {
                _gsi[i] = routes.AllocateGsi();
                _events[i] = new EventFd();
                vm.RegisterIrqfd(_events[i], _gsi[i]);
            }
        }
        catch
        {
            // Whatever was bound is unbound and every GSI taken is given back: a failed hotplug leaks nothing.
            for (int i = 0; i < count; i++)
                if (_events[i] == null && _gsi[i] != 0) { routes.FreeGsi(_gsi[i]); _gsi[i] = 0; }
            Release();
            Dispose();
            throw;
        }
    }

    public int Count => _gsi.Length;

    /// <summary>The GSI of each vector (tests and logs).</summary>
    public ReadOnlySpan<uint> Gsis => _gsi;

    /// <summary>
    /// PCI hot-unplug, on the VMM thread: each vector's irqfd is unbound, its eventfd closed, its route dropped and
    /// its GSI given back, so a later device can have it. Done once; <see cref="Dispose"/> afterwards only closes
    /// what is still open.
    /// </summary>
    public void Release()
    {
        if (_released) return;
        _released = true;
        for (int i = 0; i < _gsi.Length; i++)
        {
            if (_events[i] is not { } e) continue;
            try { _vm.UnregisterIrqfd(e, _gsi[i]); }
            catch (KvmException ex) { Flint.Vmm.Logging.Logger.Warn($"pci: unbinding the irqfd of GSI {_gsi[i]} failed: {ex.Message}"); }
            e.Dispose();
            _routes.FreeGsi(_gsi[i]);
        }
    }

    public bool Route(int index, MsiMessage message, bool enabled) =>
        _routes.Set(_gsi[index], enabled ? (message.AddressLow, message.AddressHigh, message.Data) : null);

    public void Trigger(int index) => _events[index].Write(1);

    /// <summary>
    /// Closing an eventfd detaches its irqfd (KVM sees the hang-up), so no KVM_IRQFD deassign is needed: the threads
    /// that tear a VM down have no business issuing KVM ioctls under their seccomp filters.
    /// </summary>
    public void Dispose()
    {
        foreach (var e in _events) e?.Dispose();
    }
}
