using System.Diagnostics;

namespace Flint.Vmm.Tests;

/// <summary>
/// The vhost-user KVM test's backend start, without KVM: the wait for the backend's socket ends within its limit
/// whatever the backend does (serves, stays silent, talks, exits). On merged main VhostUserBlockKvmTests ran until the
/// nested L1's limit with no output: the wait built its failure text with ReadToEnd on the daemon's stderr, which only
/// returns once the daemon exits, so the first poll before the socket appeared blocked for good.
/// </summary>
public sealed class VhostUserBackendProcessTests : IDisposable
{
    /// <summary>Longer than any limit below: a wait still running by then is the hang these tests are about.</summary>
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>
    /// Runs <paramref name="backend"/>'s wait for <paramref name="socket"/> under <see cref="Guard"/>; past it the backend
    /// is killed (which ends any read of its pipes) and the test fails saying so, instead of hanging the run.
    /// </summary>
    private static Exception? WaitUnderGuard(VhostUserBackendProcess backend, string socket, TimeSpan limit)
    {
        var wait = Task.Run(() => backend.WaitForSocket(socket, limit));
        if (!((IAsyncResult)wait).AsyncWaitHandle.WaitOne(Guard)) // not wait.Wait: it throws the wait's own failure
        {
            backend.Dispose();
            Assert.Fail($"the wait for the backend's socket (limit {limit.TotalSeconds} s) was still running after {Guard.TotalSeconds} s");
        }
        return wait.Exception?.InnerException;
    }

    [SkippableFact]
    public void Qemu_storage_daemon_serves_its_socket_within_the_limit()
    {
        Skip.IfNot(File.Exists(VhostUserBackendProcess.QemuStorageDaemon), "qemu-storage-daemon (Debian package qemu-system-common) is not installed");
        var image = Path.Combine(_dir, "disk.img");
        File.WriteAllBytes(image, new byte[64 * 512]);
        var sock = Path.Combine(_dir, "vu.sock");
        using var backend = VhostUserBackendProcess.ServeBlock(image, sock);
        Assert.Null(WaitUnderGuard(backend, sock, TimeSpan.FromSeconds(20)));
        Assert.True(File.Exists(sock));
        Assert.False(backend.HasExited);
    }

    [Fact]
    public void A_backend_that_makes_no_socket_is_killed_at_its_limit_and_the_failure_shows_its_output()
    {
        var sock = Path.Combine(_dir, "vu.sock");
        using var backend = new VhostUserBackendProcess("/bin/sh", ["-c", "echo still-starting >&2; exec sleep 300"]);
        var sw = Stopwatch.StartNew();
        var failure = WaitUnderGuard(backend, sock, TimeSpan.FromSeconds(2));
        Assert.NotNull(failure);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"the 2 s limit took {sw.Elapsed}");
        Assert.Contains("no socket", failure.Message);
        Assert.Contains("still-starting", failure.Message);
        Assert.True(backend.HasExited, "the backend was left running past its limit");
    }

    [Fact]
    public void A_backend_that_exits_before_its_socket_fails_the_wait_at_once_with_its_words()
    {
        var sock = Path.Combine(_dir, "vu.sock");
        using var backend = new VhostUserBackendProcess("/bin/sh", ["-c", "echo bad export option >&2; exit 1"]);
        var sw = Stopwatch.StartNew();
        var failure = WaitUnderGuard(backend, sock, TimeSpan.FromSeconds(20));
        Assert.NotNull(failure);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"an exited backend took {sw.Elapsed} to be noticed");
        Assert.Contains("exited", failure.Message);
        Assert.Contains("bad export option", failure.Message);
    }

    [Fact]
    public void A_socket_file_is_there_from_bind_but_listening_only_after_listen()
    {
        // The wait used to end when the file appeared; a connect between bind and listen is refused (ECONNREFUSED),
        // which failed a qemu-storage-daemon test of the clean-clone run under load.
        var sock = Path.Combine(_dir, "probe.sock");
        using var s = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        s.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(sock));
        Assert.True(File.Exists(sock));
        Assert.False(Flint.Tests.Shared.UnixListeningSocket.IsListening(sock));
        s.Listen(1);
        Assert.True(Flint.Tests.Shared.UnixListeningSocket.IsListening(sock));
    }

    [Fact]
    public void A_backend_that_writes_more_than_a_pipe_holds_before_its_socket_is_not_blocked_by_an_unread_pipe()
    {
        // 256 KiB on stderr fills the 64 KiB pipe: an undrained pipe stops the backend before it makes its socket.
        var sock = Path.Combine(_dir, "vu.sock");
        using var backend = new VhostUserBackendProcess("/bin/sh",
            ["-c", $"head -c 262144 /dev/zero | tr '\\0' x >&2; python3 -c 'import socket,time; s=socket.socket(socket.AF_UNIX); s.bind(\"{sock}\"); s.listen(1); time.sleep(300)'"]);
        Assert.Null(WaitUnderGuard(backend, sock, TimeSpan.FromSeconds(20)));
    }

    [Fact]
    public void Pipes_that_end_after_the_backend_is_disposed_do_not_crash_the_test_run()
    {
        // The kill in Dispose closes the pipes; their end may reach the reader threads after Dispose has returned (the
        // first nested run of VhostUserBlockKvmTests passed its guest, then the test host died of an ObjectDisposedException
        // there; the timing that shows it was the nested run's: this host never lost the race in 80 tries).
        for (int i = 0; i < 10; i++)
        {
            var backend = new VhostUserBackendProcess("/bin/sh", ["-c", "echo up; exec sleep 300"]);
            Thread.Sleep(i % 4 * 5);
            backend.Dispose();
        }
        Thread.Sleep(1000); // the reader threads' last callbacks run now: an exception there ends the whole process
        var (_, exited, r) = Repo.RunProgram("/bin/sh", TimeSpan.FromSeconds(1), static _ => false, ["-c", "(sleep 2; echo late) & exec sleep 30"]);
        Assert.False(exited);
        Thread.Sleep(2500); // the left-behind child's line and the pipes' end arrive after the runner returned
        Assert.DoesNotContain("late", r.Stdout);
    }
}
