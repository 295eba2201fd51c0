using System.Runtime.InteropServices;
using Flint.Sys;

namespace Flint.UffdHandler;

/// <summary>
/// flint-uffd-handler SOCKET MEMORY_FILE [--progress N]: the page-fault handler for PUT /snapshot/load's Uffd backend,
/// speaking Firecracker's protocol (so it serves Firecracker too). Listens on SOCKET, accepts the VMM's connection,
/// receives the region mappings (JSON) with the userfaultfd (SCM_RIGHTS), and serves every fault from MEMORY_FILE (a page
/// in one of its holes with the zero page, counted apart) until the VMM goes away (its end of the socket closes) or
/// SIGTERM/SIGINT; then prints how many pages it served.
/// Exit codes: 0 done, 1 a fault it could not serve (the VMM is killed then: its guest would wait forever, as
/// Firecracker's example handler does), 2 bad usage or a bad handshake.
/// </summary>
// SAFETY: the snapshot file is mmapped read-only for the handler's life; uffd ioctls get stack structs.
public static unsafe class Program
{
    private const string Name = "flint-uffd-handler";
    private const ulong TokenUffd = 1, TokenPeer = 2, TokenStop = 3, TokenListen = 4;
    /// <summary>How long the VMM has to send the mappings once connected (it sends them right after connect).</summary>
    private const int HandshakeTimeoutMs = 10_000;

    public static int Main(string[] args)
    {
        if (args.Length is not (2 or 4) || (args.Length == 4 && (args[2] != "--progress" || !long.TryParse(args[3], out _))))
        {
            Console.Error.WriteLine($"usage: {Name} SOCKET MEMORY_FILE [--progress N]");
            return 2;
        }
        long progress = args.Length == 4 ? long.Parse(args[3]) : 0;
        try { return Run(args[0], args[1], progress); }
        catch (Exception e) when (e is SysException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            Console.Error.WriteLine($"{Name}: {e.Message}");
            return 2;
        }
    }

    private static int Run(string socketPath, string memoryPath, long progress)
    {
        using var stop = new EventFd();
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Write(); });
        using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Write(); });

        int memFd = Libc.Open(memoryPath, Libc.O_RDONLY);
        if (memFd < 0) throw SysException.Last($"open {memoryPath}");
        long size = Libc.lseek(memFd, 0, 2);
        if (size <= 0) { Libc.close(memFd); throw new IOException($"{memoryPath} is empty or unreadable"); }
        // The holes once, before any fault: a Full snapshot's zero pages are holes, answered with the zero page.
        FileHoles holes;
        try { holes = FileHoles.Of(memFd); }
        catch { Libc.close(memFd); throw; }
        // SAFETY: a read-only private mapping of the whole file; never written, unmapped at exit (process end).
        byte* file = (byte*)Libc.mmap(null, (nuint)size, Libc.PROT_READ, Libc.MAP_PRIVATE, memFd, 0);
        Libc.close(memFd);
        if ((nint)file == Libc.MAP_FAILED) throw SysException.Last($"mmap {memoryPath}");

        // Firecracker's example binds without removing a stale file; so do we (a stale socket is the caller's mistake).
        int listen = UnixSockets.Listen(socketPath, 1, removeStale: false);
        using var epoll = new Epoll();
        epoll.Add(stop.Fd, TokenStop);
        epoll.Add(listen, TokenListen);
        Console.Out.WriteLine($"{Name}: listening on {socketPath} ({holes.DataBytes} of {size} bytes of the memory file are data, in {holes.DataExtentCount} extent(s); the rest are holes)");
        Span<EpollEvent> events = stackalloc EpollEvent[8];

        int peer = -1;
        while (peer < 0)
        {
            int n = epoll.Wait(events, -1);
            for (int i = 0; i < n; i++)
            {
                if (events[i].Data == TokenStop) return Finish(null, 0);
                if (events[i].Data == TokenListen) peer = UnixSockets.Accept(listen);
            }
        }
        // One VMM per handler, as Firecracker's example: the listening socket is done with.
        epoll.Remove(listen);
        Libc.close(listen);
        UnixSockets.Unlink(socketPath);

        var (uffd, regions) = Handshake(peer, (ulong)size, epoll);
        if (uffd < 0) return Finish(null, 2);
        var server = new PageServer(uffd, regions, file, holes);
        Console.Out.WriteLine($"{Name}: serving {regions.Length} region(s), page size {regions[0].PageSize}, for pid {FdPassing.PeerPid(peer)}");
        epoll.Add(uffd, TokenUffd);
        epoll.Add(peer, TokenPeer, Libc.EPOLLIN | EpollRdHup);

        long nextReport = progress;
        while (true)
        {
            int n = epoll.Wait(events, -1);
            for (int i = 0; i < n; i++)
            {
                ulong token = events[i].Data;
                if (token == TokenStop) return Finish(server, 0);
                if (token == TokenUffd && !server.Drain())
                {
                    // The guest would hang on this fault forever: end the VMM, as Firecracker's example handler does.
                    int pid = FdPassing.PeerPid(peer);
                    Console.Error.WriteLine($"{Name}: {server.Fatal}; killing the VMM (pid {pid})");
                    if (pid > 0) Libc.kill(pid, 9);
                    return Finish(server, 1);
                }
                if (token == TokenUffd && (events[i].Events & (Libc.EPOLLHUP | Libc.EPOLLERR)) != 0)
                    return Finish(server, 0); // the userfaultfd was released: nothing left to serve
                if (token == TokenPeer && PeerGone(peer, events[i].Events))
                {
                    server.Drain(); // whatever was still queued (the VMM is gone; nothing waits on it)
                    return Finish(server, 0);
                }
            }
            if (progress > 0 && server.Served >= nextReport)
            {
                Console.Out.WriteLine($"{Name}: {server.Served} pages served");
                nextReport = server.Served + progress;
            }
        }
    }

    private const uint EpollRdHup = 0x2000;

    /// <summary>
    /// Whether the VMM's end of the socket is closed. The VMM sends nothing after the handshake; anything it still sends
    /// is read and dropped here, so a level-triggered EPOLLIN cannot keep the loop spinning.
    /// </summary>
    private static bool PeerGone(int peer, uint events)
    {
        if ((events & (Libc.EPOLLHUP | EpollRdHup | Libc.EPOLLERR)) != 0) return true;
        byte* sink = stackalloc byte[256];
        nint n = UnixSockets.Recv(peer, sink, 256, 0);
        return n == 0 || (n < 0 && n != -Libc.EAGAIN);
    }

    /// <summary>Receives the mappings and the userfaultfd; (-1, []) with a message on stderr when they are not usable.</summary>
    private static (int Uffd, RegionMapping[] Regions) Handshake(int peer, ulong fileSize, Epoll epoll)
    {
        epoll.Add(peer, TokenPeer);
        var buf = new byte[64 * 1024];
        int got = 0, uffd = -1;
        var deadline = Environment.TickCount64 + HandshakeTimeoutMs;
        Span<EpollEvent> ev = stackalloc EpollEvent[4];
        try
        {
            // The mappings come in one sendmsg; a stream may still split them, so read until the JSON parses.
            while (true)
            {
                long left = deadline - Environment.TickCount64;
                if (left <= 0) { Console.Error.WriteLine($"{Name}: no mappings from the VMM within {HandshakeTimeoutMs} ms"); return Fail(); }
                epoll.Wait(ev, (int)left);
                nint n = FdPassing.Receive(peer, buf.AsSpan(got), out int fd);
                if (n == -Libc.EAGAIN) continue;
                if (n < 0) { Console.Error.WriteLine($"{Name}: receiving the mappings failed: {Libc.StrError((int)-n)}"); return Fail(); }
                if (fd >= 0)
                {
                    if (uffd >= 0) { Libc.close(fd); Console.Error.WriteLine($"{Name}: the VMM sent two descriptors"); return Fail(); }
                    uffd = fd;
                }
                if (n == 0) { Console.Error.WriteLine($"{Name}: the VMM closed the connection before sending the mappings"); return Fail(); }
                got += (int)n;
                RegionMapping[] regions;
                try { regions = RegionMapping.Parse(buf.AsSpan(0, got), fileSize); }
                catch (System.Text.Json.JsonException) when (got < buf.Length) { continue; } // more to come
                catch (Exception e) when (e is System.Text.Json.JsonException or FormatException or InvalidOperationException)
                {
                    Console.Error.WriteLine($"{Name}: bad mappings from the VMM: {e.Message}");
                    return Fail();
                }
                if (uffd < 0) { Console.Error.WriteLine($"{Name}: the mappings came without a userfaultfd"); return Fail(); }
                epoll.Remove(peer);
                return (uffd, regions);
            }
        }
        catch
        {
            if (uffd >= 0) Libc.close(uffd);
            throw;
        }

        (int, RegionMapping[]) Fail()
        {
            if (uffd >= 0) Libc.close(uffd);
            return (-1, []);
        }
    }

    private static int Finish(PageServer? server, int code)
    {
        if (server != null)
            Console.Out.WriteLine($"{Name}: served {server.Served} pages ({server.ZeroPages} zero pages for holes, {server.AlreadyPresent} already present, {server.Removed} removed by the balloon, {server.NoLongerRegistered} no longer registered)");
        else Console.Out.WriteLine($"{Name}: served 0 pages");
        Console.Out.Flush();
        return code;
    }
}
