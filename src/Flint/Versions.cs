namespace Flint;

/// <summary>
/// What flint says it is. Clients, SDKs and Firecracker's own test harness read the version (`--version`'s first
/// line "Firecracker v{semver}", `GET /version`'s `firecracker_version`, `GET /`'s `vmm_version`) to decide which API
/// they may use, so flint reports the Firecracker API version it implements: swagger `info.version` (and Cargo
/// `version`) at Firecracker main 81b38b9d. Flint's own release is only named in the start-up log line. (`GET /`'s
/// `app_name` is Firecracker's "Firecracker" too: VmmController.AppName.)
/// </summary>
public static class Versions
{
    /// <summary>The Firecracker API version flint implements and reports. Bump it with docs/compatibility.md.</summary>
    public const string Firecracker = "1.17.0-dev";

    /// <summary>Flint's own version.</summary>
    public const string Flint = "0.1.0";
}
