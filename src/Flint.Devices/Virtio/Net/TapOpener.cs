using System.Text;
using Flint.Sys;

namespace Flint.Devices.Virtio.Net;

/// <summary>
/// Opens a network interface's tap when the interface is configured (PUT /network-interfaces), as Firecracker's
/// Net::new does, so a host device that is not a TAP, is busy or cannot be opened is refused there with
/// Firecracker's NetError/TapError text instead of failing InstanceStart.
/// </summary>
public static class TapOpener
{
    /// <exception cref="TapOpenException">The reason, worded as Firecracker's NetError.</exception>
    public static Tap Open(string hostDevName)
    {
        // Firecracker's build_terminated_if_name: the name and its NUL must fit IFNAMSIZ (16).
        int n = Encoding.UTF8.GetByteCount(hostDevName);
        if (n == 0 || n > Tap.MaxNameLength) throw new TapOpenException("Open tap device failed: Invalid interface name");
        try
        {
            return Tap.Open(hostDevName);
        }
        catch (SysException e)
        {
            string os = $"{Libc.StrError(e.Errno)} (os error {e.Errno})";
            throw new TapOpenException(e.Operation switch
            {
                var op when op.StartsWith("open", StringComparison.Ordinal) => $"Open tap device failed: Couldn't open /dev/net/tun: {os}",
                var op when op.StartsWith("TUNSETIFF", StringComparison.Ordinal) =>
                    $"Open tap device failed: Error while creating ifreq structure: {os}. Invalid TUN/TAP Backend provided by {hostDevName}. Check our documentation on setting up the network devices.",
                var op when op.StartsWith("TUNSETVNETHDRSZ", StringComparison.Ordinal) =>
                    $"Setting vnet header size failed: Error while setting size of the vnet header: {os}",
                _ => $"Open tap device failed: Error while setting the offload flags: {os}",
            });
        }
    }
}

/// <summary>A tap that could not be opened; the message is Firecracker's NetError text.</summary>
public sealed class TapOpenException(string message) : Exception(message)
{
    /// <summary>Firecracker's NetworkInterfaceError::CreateNetworkDevice around the NetError.</summary>
    public string FirecrackerText => $"Could not create the network device: {Message}";
}
