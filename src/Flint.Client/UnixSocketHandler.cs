using System.Net.Sockets;

namespace Flint.Client;

/// <summary>An HTTP/1.1 handler whose connections go to a Unix domain socket instead of TCP.</summary>
internal static class UnixSocketHandler
{
    public static SocketsHttpHandler Create(string socketPath, FirecrackerClientOptions options) => new()
    {
        ConnectCallback = (_, ct) => ConnectAsync(socketPath, ct),
        ConnectTimeout = options.ConnectTimeout,
        PooledConnectionIdleTimeout = options.IdleConnectionTimeout,
        MaxConnectionsPerServer = options.MaxConnections,
        // The API never redirects or compresses, and it has no cookies or proxies: turn all of it off so that
        // nothing but the request the caller asked for goes over the socket.
        AllowAutoRedirect = false,
        UseCookies = false,
        UseProxy = false,
        AutomaticDecompression = System.Net.DecompressionMethods.None,
    };

    private static async ValueTask<Stream> ConnectAsync(string socketPath, CancellationToken ct)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
