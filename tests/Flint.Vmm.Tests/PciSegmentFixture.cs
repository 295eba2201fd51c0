using Flint.Devices;
using Flint.Memory;
using Flint.Vmm.Pci;

namespace Flint.Vmm.Tests;

/// <summary>
/// A PCI segment without KVM for hotplug tests: <see cref="PciDevices"/> over a <see cref="RecordingPciVm"/>, 16 MiB of
/// guest RAM, the MMIO and port buses, an event loop and a temporary directory for backing files; everything the
/// segment created is disposed in reverse order when the test ends.
/// </summary>
public abstract class PciSegmentFixture : IDisposable
{
    private protected readonly string _dir;
    private protected readonly RecordingPciVm _vm = new();
    private protected readonly GuestMemory _memory = GuestMemory.Create(Flint.Arch.X86.MemoryLayout.RamRanges(16 << 20));
    private protected readonly EventLoop _loop = new();
    private protected readonly Bus _mmio = new(), _pio = new();
    private protected readonly List<IDisposable> _owned = [];
    private protected readonly PciDevices _pci;

    private protected PciSegmentFixture(string tempPrefix)
    {
        _dir = Directory.CreateTempSubdirectory(tempPrefix).FullName;
        _pci = new PciDevices(_vm, _memory, _mmio, _pio, _loop, _owned);
    }

    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        _loop.Dispose();
        _memory.Dispose();
        Directory.Delete(_dir, true);
        GC.SuppressFinalize(this);
    }
}
