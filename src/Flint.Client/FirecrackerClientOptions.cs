namespace Flint.Client;

/// <summary>Settings of a <see cref="FirecrackerClient"/>.</summary>
public sealed class FirecrackerClientOptions
{
    /// <summary>
    /// Bound on each call, from sending the request to reading the whole answer (connecting included). A call past it
    /// throws <see cref="TimeoutException"/>. Default 30 s: every Firecracker request is synchronous and quick, except
    /// snapshot create/load of a large guest; raise it for those or pass a token with its own deadline.
    /// </summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Bound on connecting to the socket. Default 5 s.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long an idle connection is kept for reuse. Default 15 s, below Flint's 30 s idle close, so the client drops
    /// the connection before the server does (Firecracker keeps idle connections open).
    /// </summary>
    public TimeSpan IdleConnectionTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Connections used at once. Default 1: requests share one keep-alive connection and run one after another,
    /// which is how the VMM serves them anyway (one API thread). Firecracker accepts at most 10 connections.
    /// </summary>
    public int MaxConnections { get; set; } = 1;

    /// <summary>Largest answer read (bytes); a larger one fails the call. Default 16 MiB (MMDS contents are the largest answers).</summary>
    public int MaxResponseBytes { get; set; } = 16 * 1024 * 1024;
}
