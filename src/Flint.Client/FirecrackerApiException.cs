using System.Net;

namespace Flint.Client;

/// <summary>
/// The VMM refused a request: any answer outside 2xx. <see cref="FaultMessage"/> is the VMM's own words (the
/// <c>fault_message</c> of Firecracker's error body), or the raw body when it was not that JSON.
/// </summary>
public sealed class FirecrackerApiException : FirecrackerClientException
{
    /// <summary>Creates the exception for <paramref name="method"/> <paramref name="path"/> answered with <paramref name="statusCode"/>.</summary>
    public FirecrackerApiException(HttpStatusCode statusCode, string faultMessage, string method, string path)
        : base($"{method} {path} failed with {(int)statusCode} {statusCode}: {faultMessage}")
    {
        StatusCode = statusCode;
        FaultMessage = faultMessage;
        Method = method;
        Path = path;
    }

    /// <summary>The HTTP status (Firecracker answers 400 for bad input and state errors, 404 for empty MMDS).</summary>
    public HttpStatusCode StatusCode { get; }

    /// <summary>The VMM's fault message.</summary>
    public string FaultMessage { get; }

    /// <summary>The request's method.</summary>
    public string Method { get; }

    /// <summary>The request's path.</summary>
    public string Path { get; }
}
