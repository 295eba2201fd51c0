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
    private readonly KvmGsiRoutes _routes;
    private readonly uint[] _gsi;
    private readonly EventFd[] _events;

    public KvmMsiVectors(Vm vm, KvmGsiRoutes routes, int count)
    {
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
            Dispose();
            throw;
        }
    }

    public int Count => _gsi.Length;

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
