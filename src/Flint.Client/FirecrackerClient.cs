using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Flint.Client.Models;

namespace Flint.Client;

/// <summary>
/// A client for the Firecracker API on a VMM's Unix socket (<c>--api-sock</c>). Works against Firecracker and Flint.
/// Thread-safe: one instance per VMM, shared by all callers. Requests go over one keep-alive HTTP/1.1 connection
/// (see <see cref="FirecrackerClientOptions.MaxConnections"/>), which is reopened when the VMM closes it.
/// </summary>
/// <remarks>
/// Every call is bounded by <see cref="FirecrackerClientOptions.RequestTimeout"/> and can be cancelled. Errors:
/// <see cref="FirecrackerApiException"/> when the VMM refuses a request (with its fault_message),
/// <see cref="TimeoutException"/> when it does not answer in time, <see cref="HttpRequestException"/> when the socket
/// cannot be reached, <see cref="FirecrackerClientException"/> when an answer cannot be read.
/// </remarks>
public sealed partial class FirecrackerClient : IDisposable
{
    private static readonly FirecrackerJsonContext Json = FirecrackerJsonContext.Default;
    private static readonly MediaTypeHeaderValue JsonMediaType = new("application/json");

    private readonly HttpClient _http;
    private readonly TimeSpan _timeout;

    /// <summary>Creates a client for the API socket at <paramref name="socketPath"/>. Nothing connects until the first call.</summary>
    public FirecrackerClient(string socketPath, FirecrackerClientOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(socketPath);
        options ??= new FirecrackerClientOptions();
        ThrowIfNotPositive(options.RequestTimeout, nameof(options.RequestTimeout));
        ThrowIfNotPositive(options.ConnectTimeout, nameof(options.ConnectTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxConnections, 1, nameof(options.MaxConnections));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxResponseBytes, 1, nameof(options.MaxResponseBytes));

        SocketPath = socketPath;
        _timeout = options.RequestTimeout;
        _http = new HttpClient(UnixSocketHandler.Create(socketPath, options), disposeHandler: true)
        {
            // The host is only what goes in the Host header: the handler connects to the socket whatever it says.
            BaseAddress = new Uri("http://localhost/"),
            // Our own per-call deadline (with a TimeoutException that names the call) replaces HttpClient's.
            Timeout = Timeout.InfiniteTimeSpan,
            MaxResponseContentBufferSize = options.MaxResponseBytes,
            DefaultRequestVersion = HttpVersion.Version11,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        _http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
    }

    /// <summary>The API socket this client talks to.</summary>
    public string SocketPath { get; }

    /// <summary>Closes the connection. Calls in flight fail.</summary>
    public void Dispose() => _http.Dispose();

    private static void ThrowIfNotPositive(TimeSpan t, string name)
    {
        if (t <= TimeSpan.Zero && t != Timeout.InfiniteTimeSpan)
            throw new ArgumentOutOfRangeException(name, t, "must be positive (or Timeout.InfiniteTimeSpan)");
    }

    private static string Resource(string prefix, string id)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        return prefix + Uri.EscapeDataString(id);
    }

    private Task SendAsync<TBody>(HttpMethod method, string path, TBody body, JsonTypeInfo<TBody> bodyType, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(body);
        var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(body, bodyType));
        content.Headers.ContentType = JsonMediaType;
        return SendAsync(method, path, content, ct);
    }

    private async Task<T> GetAsync<T>(string path, JsonTypeInfo<T> resultType, CancellationToken ct)
    {
        var bytes = await SendAsync(HttpMethod.Get, path, null, ct).ConfigureAwait(false);
        T? result;
        try
        {
            result = JsonSerializer.Deserialize(bytes, resultType);
        }
        catch (JsonException e)
        {
            throw new FirecrackerClientException($"GET {path}: the answer is not the JSON expected ({e.Message})", e);
        }
        return result ?? throw new FirecrackerClientException($"GET {path}: the answer is JSON null");
    }

    /// <summary>
    /// Sends one request and returns the answer's body when its status is 2xx. Every wait (connecting, sending,
    /// reading the whole answer) is under one deadline; a call past it throws <see cref="TimeoutException"/> and the
    /// connection it used is dropped, so a VMM that never answers cannot hold a caller.
    /// </summary>
    private async Task<byte[]> SendAsync(HttpMethod method, string path, HttpContent? content, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path) { Content = content };
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(_timeout);
        try
        {
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, deadline.Token)
                .ConfigureAwait(false);
            var body = await response.Content.ReadAsByteArrayAsync(deadline.Token).ConfigureAwait(false);
            if (response.IsSuccessStatusCode) return body;
            throw new FirecrackerApiException(response.StatusCode, FaultMessageOf(body, response), method.Method, path);
        }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            // Not the caller's token: our deadline, or the handler's connect timeout (which cancels on its own).
            throw new TimeoutException(deadline.IsCancellationRequested
                ? $"{method.Method} {path}: no answer from {SocketPath} within {_timeout.TotalSeconds:0.###} s"
                : $"{method.Method} {path}: could not connect to {SocketPath} in time", e);
        }
    }

    /// <summary>The fault_message of an error body; the body itself (cut short) when it is not Firecracker's error JSON.</summary>
    internal static string FaultMessageOf(byte[] body, HttpResponseMessage response)
    {
        if (body.Length > 0)
        {
            try
            {
                var error = JsonSerializer.Deserialize(body, Json.ApiError);
                if (error?.FaultMessage is { } message) return message;
            }
            catch (JsonException)
            {
                // Not Firecracker's error JSON (a proxy, a different server): report the text as it came.
            }
            const int maxChars = 4096;
            var text = Encoding.UTF8.GetString(body, 0, Math.Min(body.Length, maxChars * 4));
            return text.Length > maxChars ? text[..maxChars] + "..." : text;
        }
        return response.ReasonPhrase ?? "";
    }
}
