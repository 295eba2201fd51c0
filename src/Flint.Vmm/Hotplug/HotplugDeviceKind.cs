namespace Flint.Vmm.Hotplug;

/// <summary>The device types Firecracker hot-plugs and unplugs (its VirtioDeviceId's type): one per DELETE route.</summary>
public enum HotplugDeviceKind { Block, Net, Pmem }
