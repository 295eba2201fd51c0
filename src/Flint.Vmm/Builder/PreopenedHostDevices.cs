using Flint.Devices.Virtio.Net;
using Flint.Devices.Virtio.Vsock;

namespace Flint.Vmm.Builder;

/// <summary>
/// Host resources Firecracker acquires when a device is configured, not when the VM starts: each network interface's
/// tap (Net::new at PUT /network-interfaces) and the vsock's listening socket (VsockUnixBackend::new at PUT /vsock).
/// The API controller fills this before the start; <see cref="VmBuilder"/> takes what it finds (and opens the rest
/// itself, as for a config file). Whatever is replaced or never taken is closed here.
/// Used on the VMM thread only (API requests and InstanceStart are handled there), so it takes no lock.
/// </summary>
public sealed class PreopenedHostDevices : IDisposable
{
    private readonly Dictionary<string, Tap> _taps = new(StringComparer.Ordinal);
    private VsockListener? _vsock;

    /// <summary>Records <paramref name="tap"/> for interface <paramref name="ifaceId"/>, closing the one it replaces.</summary>
    public void SetTap(string ifaceId, Tap tap)
    {
        if (_taps.Remove(ifaceId, out var old) && !ReferenceEquals(old, tap)) old.Dispose();
        _taps[ifaceId] = tap;
    }

    /// <summary>Closes interface <paramref name="ifaceId"/>'s tap, if one is held.</summary>
    public void RemoveTap(string ifaceId)
    {
        if (_taps.Remove(ifaceId, out var old)) old.Dispose();
    }

    public bool HasTap(string ifaceId) => _taps.ContainsKey(ifaceId);

    /// <summary>The tap opened for <paramref name="ifaceId"/> if it is still <paramref name="hostDevName"/>; the caller owns it.</summary>
    public Tap? TakeTap(string ifaceId, string hostDevName)
    {
        if (!_taps.TryGetValue(ifaceId, out var tap)) return null;
        _taps.Remove(ifaceId);
        if (tap.Name == hostDevName) return tap;
        tap.Dispose();
        return null;
    }

    /// <summary>Records the vsock's bound socket, closing (and removing the file of) the one it replaces.</summary>
    public void SetVsock(VsockListener? listener)
    {
        var old = _vsock;
        _vsock = listener;
        if (old != null && !ReferenceEquals(old, listener)) old.Dispose();
    }

    public VsockListener? Vsock => _vsock;

    /// <summary>The socket bound for <paramref name="udsPath"/>, if that is the one held; the caller owns it.</summary>
    public VsockListener? TakeVsock(string udsPath)
    {
        var l = _vsock;
        if (l == null || l.Path != udsPath) return null;
        _vsock = null;
        return l;
    }

    public void Dispose()
    {
        foreach (var t in _taps.Values) t.Dispose();
        _taps.Clear();
        SetVsock(null);
    }
}
