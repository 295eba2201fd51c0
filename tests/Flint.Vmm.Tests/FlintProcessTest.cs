using System.Net.Sockets;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// A test that runs flint processes (<see cref="FlintConsoleProcess"/>: console kept as raw bytes, log in a file) in a
/// temporary directory of its own: every process it started is disposed (killed, and reported if it had ended by
/// itself) and the directory removed when the test ends.
/// </summary>
public abstract class FlintProcessTest(ITestOutputHelper output, string namePrefix) : IDisposable
{
    private readonly List<FlintConsoleProcess> _procs = [];

    /// <summary>The test's directory: sockets, logs, disks and snapshot files.</summary>
    protected string Dir { get; } = Repo.TempDir();

    protected ITestOutputHelper Output => output;

    /// <summary>Starts flint as <c>namePrefix + name</c> with <paramref name="args"/> (--enable-pci) and waits for its API socket.</summary>
    private protected FlintConsoleProcess StartFlint(string name, params string[] args)
    {
        var f = new FlintConsoleProcess(Dir, namePrefix + name, output.WriteLine, args);
        _procs.Add(f);
        return f;
    }

    /// <summary>The console so far of <paramref name="f"/>.</summary>
    private protected static string Text(FlintConsoleProcess f) => f.Console;

    /// <summary>A connection to the API socket at <paramref name="sock"/>.</summary>
    protected static Socket Connect(string sock)
    {
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 120_000, SendTimeout = 60_000 };
        s.Connect(new UnixDomainSocketEndPoint(sock));
        return s;
    }

    /// <summary>One API call on <paramref name="s"/>; asserts 204.</summary>
    protected static void Ok(Socket s, string method, string path, string body)
    {
        var (st, b) = ApiHttp.Request(s, method, path, body);
        Assert.True(st == 204, $"{method} {path}: {st} {b}");
    }

    public void Dispose()
    {
        foreach (var p in _procs) p.Dispose();
        Directory.Delete(Dir, true);
        GC.SuppressFinalize(this);
    }
}
