namespace Flint.Api;

/// <summary>
/// The API socket could not be opened. <see cref="Exception.Message"/> is the whole line for the operator, in
/// Firecracker's wording: its API server either reports the path as in use or fails to "bind and run".
/// </summary>
public sealed class ApiSocketException(string message) : IOException(message)
{
    public static ApiSocketException InUse(string path) =>
        new($"Failed to open the API socket at: {path}. Check that it is not already used.");

    /// <summary>Firecracker's ServerError::IOError wording: the reason reads like Rust's io::Error.</summary>
    public static ApiSocketException BindFailed(string reason) =>
        new($"Failed to bind and run the HTTP server: IO error: {reason}");
}
