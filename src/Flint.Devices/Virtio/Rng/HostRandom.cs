using System.Runtime.InteropServices;

namespace Flint.Devices.Virtio.Rng;

/// <summary>The host's getrandom(2): blittable, so NativeAOT calls it directly.</summary>
internal static unsafe class HostRandom
{
    private const int EINTR = 4;

    [DllImport("libc", EntryPoint = "getrandom", SetLastError = true)]
    private static extern nint getrandom(void* buf, nuint len, uint flags);

    /// <summary>Fills [p, p+len) with random bytes (retrying short reads and EINTR). False on any other error.</summary>
    public static bool Fill(byte* p, ulong len)
    {
        while (len > 0)
        {
            nint n = getrandom(p, (nuint)len, 0);
            if (n < 0)
            {
                if (Marshal.GetLastPInvokeError() == EINTR) continue;
                return false;
            }
            if (n == 0) return false;
            p += n;
            len -= (ulong)n;
        }
        return true;
    }
}
