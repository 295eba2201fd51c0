namespace Flint.Vmm.Hotplug;

/// <summary>
/// A refused hot-plug or hot-unplug, carrying Firecracker's whole fault_message (its VmmActionError Display, area
/// prefix included where Firecracker has one: "Drive config error: ...", "PCI manager error: ..."; none for
/// "Device ID in use" and the like). Nothing was changed when this is thrown.
/// </summary>
public sealed class HotplugException(string message) : Exception(message)
{
    // Firecracker's VmmActionError variants for hotplug (rpc_interface.rs), Display without a prefix.
    public const string PciNotEnabled = "PCI is not enabled";
    public const string DeviceIdInUse = "Device ID in use";
    public const string DeviceNotFound = "Device not found";
    public const string CannotUnplugRootDevice = "Cannot unplug root device";
    /// <summary>VmmActionError::PciManager's prefix.</summary>
    public const string PciManagerPrefix = "PCI manager error: ";
    /// <summary>PciManagerError::PciRoot's prefix, before PciRootError's text.</summary>
    public const string PciRootPrefix = "PCI root error: ";
}
