using System.Text.Json;
using Flint.Vmm.Config;
using Flint.Vmm.Hotplug;

namespace Flint.Vmm.Rpc;

/// <summary>
/// PUT /drives, /network-interfaces, /pmem after the start and DELETE on them: PCI device hotplug and unplug
/// (Firecracker 1.16, docs/device-hotplug.md), checked in Firecracker's order (device_manager/mod.rs hotplug_device and
/// hot_unplug_device): PCI first ("PCI is not enabled" without --enable-pci), then the id, then the root rule, then
/// the device itself. The configuration GET /vm/config shows changes only when the device was plugged or unplugged.
/// </summary>
public sealed partial class VmmController
{
    private void HotplugDrive(DriveConfig d)
    {
        RequirePci();
        if (_cfg.Drives.Any(x => x.DriveId == d.DriveId)) throw new ApiFault(HotplugException.DeviceIdInUse, bare: true);
        if (d.IsRootDevice) throw new ApiFault("A root block device already exists!");
        var backend = DriveKind.Of(d);
        if (backend == DriveBackend.Invalid) throw new ApiFault(DriveKind.InvalidConfig);
        if (backend == DriveBackend.VhostUser)
        {
            // The backend is connected to and negotiated with now; its failures already carry the creation text.
            Hotplug(() => _vm!.HotplugDrive(d), "");
            StoreDrive(d);
            return;
        }
        if (string.IsNullOrEmpty(d.PathOnHost)) throw new ApiFault($"Unable to create the block device: path_on_host is required for drive \"{d.DriveId}\".");
        CheckOpen(d.PathOnHost, d.IsReadOnly != true,
            e => $"Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: {e} {d.PathOnHost}");
        if (IoEngineSupport.Refusal(d.IoEngine) is { } noAsync) throw new ApiFault(noAsync);
        try { DeviceConfigs.Limiter(d.RateLimiter, "rate_limiter"); }
        catch (ConfigException e) { throw new ApiFault(e.Message); }
        Hotplug(() => _vm!.HotplugDrive(d), "Unable to create the virtio block device: ");
        StoreDrive(d);
    }

    private void HotplugNet(PutNetworkInterface n)
    {
        RequirePci();
        var list = _cfg.NetworkInterfaces ?? [];
        if (list.Any(e => e.GetProperty("iface_id").GetString() == n.IfaceId)) throw new ApiFault(HotplugException.DeviceIdInUse, bare: true);
        foreach (var e in list)
        {
            if (n.GuestMac != null && e.TryGetProperty("guest_mac", out var mac) && mac.ValueKind == JsonValueKind.String
                && string.Equals(mac.GetString(), n.GuestMac, StringComparison.OrdinalIgnoreCase))
                throw new ApiFault($"The MAC address is already in use: {n.GuestMac.ToLowerInvariant()}");
        }
        // The tap first, as the boot-time PUT (and Firecracker's NetBuilder) opens it: its errors are the ones a client sees.
        Flint.Devices.Virtio.Net.Tap tap;
        try { tap = Flint.Devices.Virtio.Net.TapOpener.Open(n.HostDevName); }
        catch (Flint.Devices.Virtio.Net.TapOpenException e) { throw new ApiFault(e.FirecrackerText); }
        NetConfig net;
        try { net = DeviceConfigs.Net(n.Config); }
        catch (ConfigException e) { tap.Dispose(); throw new ApiFault(e.Message); }
        // The VM owns the tap from here, failure included (the device or the hotplug closes it).
        Hotplug(() => _vm!.HotplugNet(net, tap), "");
        _cfg.NetworkInterfaces = [.. list, n.Config];
    }

    private void HotplugPmem(PmemConfig p)
    {
        RequirePci();
        if (_cfg.Pmem.Any(x => x.Id == p.Id)) throw new ApiFault(HotplugException.DeviceIdInUse, bare: true);
        if (p.RootDevice) throw new ApiFault(PmemRules.AddingSecondRootDevice);
        try { DeviceConfigs.Limiter(p.RateLimiter, "rate_limiter"); }
        catch (ConfigException e) { throw new ApiFault(e.Message); }
        Hotplug(() => _vm!.HotplugPmem(p), "Unable to create the virtio-pmem device: ");
        _cfg.Pmem = [.. _cfg.Pmem, p];
    }

    private void HotUnplug(HotUnplugDevice u)
    {
        RequirePci();
        bool root;
        switch (u.Kind)
        {
            case HotplugDeviceKind.Block:
                var d = _cfg.Drives.FirstOrDefault(x => x.DriveId == u.Id) ?? throw new ApiFault(HotplugException.DeviceNotFound, bare: true);
                root = d.IsRootDevice;
                break;
            case HotplugDeviceKind.Net:
                if (!(_cfg.NetworkInterfaces ?? []).Any(e => e.GetProperty("iface_id").GetString() == u.Id))
                    throw new ApiFault(HotplugException.DeviceNotFound, bare: true);
                root = false;
                break;
            default:
                var p = _cfg.Pmem.FirstOrDefault(x => x.Id == u.Id) ?? throw new ApiFault(HotplugException.DeviceNotFound, bare: true);
                root = p.RootDevice;
                break;
        }
        if (root) throw new ApiFault(HotplugException.CannotUnplugRootDevice, bare: true);
        Hotplug(() => _vm!.HotUnplug(u.Kind, u.Id), "");
        switch (u.Kind)
        {
            case HotplugDeviceKind.Block: _cfg.Drives = [.. _cfg.Drives.Where(x => x.DriveId != u.Id)]; break;
            case HotplugDeviceKind.Net: _cfg.NetworkInterfaces = [.. (_cfg.NetworkInterfaces ?? []).Where(e => e.GetProperty("iface_id").GetString() != u.Id)]; break;
            default: _cfg.Pmem = [.. _cfg.Pmem.Where(x => x.Id != u.Id)]; break;
        }
    }

    /// <summary>Firecracker's VmmActionError::PciNotEnabled: the VM has no PCI segment to plug into or unplug from.</summary>
    private void RequirePci()
    {
        if (!_vm!.PciEnabled) throw new ApiFault(HotplugException.PciNotEnabled, bare: true);
    }

    /// <summary>
    /// Runs a hotplug step on the VM. Its own refusals carry Firecracker's whole text; any other request failure (a
    /// file, a KVM or system call) is worded as the device's creation error, after <paramref name="createPrefix"/>.
    /// </summary>
    private static void Hotplug(Action a, string createPrefix)
    {
        try { a(); }
        catch (HotplugException e) { throw new ApiFault(e.Message, bare: true); }
        catch (Exception e) when (IsRequestFailure(e)) { throw new ApiFault(createPrefix + ErrorText(e)); }
    }
}
