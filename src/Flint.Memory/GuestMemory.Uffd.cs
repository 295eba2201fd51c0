using System.Text;
using Flint.Sys;

namespace Flint.Memory;

/// <summary>
/// Guest RAM for a snapshot restored with Firecracker's Uffd backend: anonymous memory whose missing pages an external
/// page-fault handler serves (UFFDIO_COPY) through a userfaultfd this process creates, registers and hands over.
/// </summary>
// SAFETY: regions are anonymous mmaps registered with userfaultfd; their sizes are the layout's, unmapped once in Dispose.
public sealed unsafe partial class GuestMemory
{
    /// <summary>What must live exactly as long as the mappings (the userfaultfd and the handler's socket).</summary>
    private IDisposable? _backing;

    /// <summary>
    /// Maps anonymous memory for <paramref name="ranges"/>, creates a userfaultfd (close-on-exec, non-blocking,
    /// kernel faults included, UFFD_FEATURE_EVENT_REMOVE required so the balloon's madvise reaches the handler), registers
    /// each region for missing pages, connects to the handler's socket at <paramref name="socketPath"/> and sends it
    /// Firecracker's handshake: the JSON array of region mappings with the userfaultfd attached (SCM_RIGHTS). The
    /// userfaultfd and the socket stay open while the memory lives (as Firecracker keeps both: the handler learns of
    /// this process's end by the socket closing). Any failure leaves nothing behind: mappings unmapped, fds closed.
    /// </summary>
    /// <param name="hotplug">The hotplug area the memory file holds after boot RAM (reserved, registered and sent to the
    /// handler as one more region, as Firecracker sends its hotpluggable region), or null.</param>
    public static GuestMemory CreateForUffd(IEnumerable<(ulong GuestBase, ulong Size)> ranges, string socketPath,
        UffdSource source, HugePages hugePages = HugePages.None, HotplugLayout? hotplug = null)
    {
        if (hotplug != null && hugePages == HugePages.HugeTlb2M)
            throw new GuestMemoryUffdException("Failed to restore guest memory: a hotplug area on 2 MiB huge pages is not supported by Flint");
        var memory = Create(ranges, hugePages);
        int uffd = -1, sock = -1;
        try
        {
            try
            {
                uffd = Userfaultfd.Open(Libc.O_CLOEXEC | Libc.O_NONBLOCK, source);
                Userfaultfd.Handshake(uffd, UffdAbi.FeatureEventRemove);
            }
            catch (SysException e) { throw new GuestMemoryUffdException($"Failed to UFFD object: {Os(e)}"); }
            try
            {
                // SAFETY: only addresses are passed: each region's own live mapping, registered whole.
                foreach (var r in memory._regions) Userfaultfd.Register(uffd, (ulong)r.Host, r.Size);
                if (hotplug is { } h) memory.RestoreHotplugForUffd(h, uffd);
            }
            catch (SysException e) { throw new GuestMemoryUffdException($"Failed to register memory address range with the userfaultfd object: {Os(e)}"); }

            // Rust's UnixStream::connect refuses a path that does not fit sun_path with these words.
            if (Encoding.UTF8.GetByteCount(socketPath) >= UnixSockets.SunPathMax)
                throw new GuestMemoryUffdException("Failed to connect to UDS Unix stream: path must be shorter than SUN_LEN");
            // A Unix stream connect completes at once or fails (EAGAIN: the handler's backlog is full): nothing waits.
            sock = socketPath.Length == 0 ? -Libc.ENOENT : UnixSockets.Connect(socketPath);
            if (sock < 0) throw new GuestMemoryUffdException($"Failed to connect to UDS Unix stream: {Os(-sock)}");
            byte[] message = HandshakeJson(memory, hugePages == HugePages.HugeTlb2M ? HugePageSize : PageSize);
            nint sent = FdPassing.Send(sock, message, uffd);
            if (sent < 0) throw new GuestMemoryUffdException($"Failed to sends file descriptor: {Os((int)-sent)}");
            if (sent != message.Length) throw new GuestMemoryUffdException($"Failed to sends file descriptor: the handler took {sent} of {message.Length} bytes");
            memory._backing = new UffdLink(uffd, sock);
            return memory;
        }
        catch
        {
            if (sock >= 0) Libc.close(sock);
            if (uffd >= 0) Libc.close(uffd);
            memory.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Firecracker's message, byte for byte as serde_json writes Vec&lt;GuestRegionUffdMapping&gt;: per region, in
    /// memory file order, its host address, size, offset in the memory file and page size, and page_size_kib (the
    /// same number in bytes: Firecracker keeps the misnamed field for older handlers). The hotplug area, when there is
    /// one, comes last (after boot RAM, as in the memory file), whole, plugged or not: the handler must cover it all.
    /// </summary>
    public static byte[] HandshakeJson(GuestMemory memory, ulong pageSize)
    {
        var sb = new StringBuilder("[");
        ulong offset = 0;
        foreach (var r in memory._regions)
        {
            if (sb.Length > 1) sb.Append(',');
            sb.Append("{\"base_host_virt_addr\":").Append((ulong)r.Host).Append(",\"size\":").Append(r.Size)
              .Append(",\"offset\":").Append(offset).Append(",\"page_size\":").Append(pageSize)
              .Append(",\"page_size_kib\":").Append(pageSize).Append('}');
            offset += r.Size;
        }
        if (memory._hotplug is { } a)
            sb.Append(",{\"base_host_virt_addr\":").Append((ulong)a.Host).Append(",\"size\":").Append(a.Size)
              .Append(",\"offset\":").Append(offset).Append(",\"page_size\":").Append(pageSize)
              .Append(",\"page_size_kib\":").Append(pageSize).Append('}');
        return Encoding.ASCII.GetBytes(sb.Append(']').ToString());
    }

    /// <summary>Rust's io::Error text for an errno ("No such file or directory (os error 2)"): Firecracker's words.</summary>
    private static string Os(int errno) => $"{Libc.StrError(errno)} (os error {errno})";
    private static string Os(SysException e) => e.Message;

    /// <summary>
    /// False once the page-fault handler of Uffd-restored memory has closed its end of the socket (it exited or
    /// crashed); true for any other memory. Nothing serves a fault or reads a remove event after that: a discard
    /// (madvise on registered memory waits for its remove event to be read) would wait forever, since this process
    /// holds the userfaultfd too and the kernel ends that wait only when every holder has closed it.
    /// </summary>
    public bool FaultHandlerAlive => _backing is not UffdLink link || link.HandlerAlive;

    /// <summary>The userfaultfd and the handler's socket, closed with the memory.</summary>
    private sealed class UffdLink(int uffd, int sock) : IDisposable
    {
        private int _uffd = uffd, _sock = sock;
        private volatile bool _handlerGone;

        /// <summary>
        /// A peek at the socket (never blocks; the handler sends nothing after the handshake): end of file or an error
        /// means the handler is gone, for good.
        /// </summary>
        public bool HandlerAlive
        {
            get
            {
                if (_handlerGone) return false;
                int s = _sock;
                if (s < 0) return false;
                byte b;
                nint n = UnixSockets.Recv(s, &b, 1, SocketLibc.MSG_PEEK);
                if (n > 0 || n == -Libc.EAGAIN) return true;
                _handlerGone = true;
                return false;
            }
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _sock, -1) is var s and >= 0) Libc.close(s);
            if (Interlocked.Exchange(ref _uffd, -1) is var u and >= 0) Libc.close(u);
        }
    }
}

/// <summary>The Uffd backend failed: the message is Firecracker's GuestMemoryFromUffdError text.</summary>
public sealed class GuestMemoryUffdException(string message) : IOException(message);
