using System.Net.Sockets;

namespace Flint.Pool.Tests;

internal static class UnixHttp
{
    /// <summary>An HttpClient whose every connection goes to the Unix socket <paramref name="path"/>.</summary>
    public static HttpClient Create(string path, TimeSpan timeout) =>
        new(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = 64,
            ConnectCallback = async (_, ct) =>
            {
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await s.ConnectAsync(new UnixDomainSocketEndPoint(path), ct);
                return new NetworkStream(s, ownsSocket: true);
            },
        })
        { BaseAddress = new Uri("http://localhost"), Timeout = timeout };
}
