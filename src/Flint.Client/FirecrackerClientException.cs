namespace Flint.Client;

/// <summary>
/// Base of the errors <see cref="FirecrackerClient"/> raises itself: an answer it cannot use. Transport failures are
/// <see cref="System.Net.Http.HttpRequestException"/> (no socket, connection refused or reset), a call past its
/// timeout is <see cref="TimeoutException"/>, and a call the caller cancelled is <see cref="OperationCanceledException"/>.
/// </summary>
public class FirecrackerClientException : Exception
{
    /// <summary>Creates the exception.</summary>
    public FirecrackerClientException(string message, Exception? inner = null) : base(message, inner) { }
}
