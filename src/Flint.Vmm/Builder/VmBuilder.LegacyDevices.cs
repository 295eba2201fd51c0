using Flint.Devices;
using Flint.Devices.Legacy;
using Flint.Devices.RateLimiting;
using Flint.Kvm;
using Flint.Sys;
using Flint.Vmm.Config;

namespace Flint.Vmm.Builder;

/// <summary>The port-IO devices every microVM has.</summary>
internal sealed record LegacyDevices(Serial Serial, I8042 I8042);

public static partial class VmBuilder
{
    /// <summary>
    /// Step: the COM1 serial console and the i8042 (whose reset line ends the VM), on the port bus with their irqfds.
    /// PUT /serial sends the output to serial_out_path instead of stdout, and then (as Firecracker) takes no console input.
    /// </summary>
    internal static LegacyDevices AttachLegacyDevices(VmConfig config, VmOptions options, IVmEventFds vm, Bus pio, EventLoop loop,
        VmExit exit, List<IDisposable> owned)
    {
        var serialIrq = NewIrq(vm, Serial.Com1Irq, owned);
        var serialOut = options.ConsoleOutput;
        bool consoleInput = options.ConsoleInputFd >= 0;
        if (config.SerialOutPath is { } serialPath)
        {
            SerialOutFile file;
            try { file = SerialOutFile.Open(serialPath); }
            catch (IOException e) { throw new SerialOutOpenException(e.Message); }
            owned.Add(file);
            serialOut = file;
            consoleInput = false;
        }
        var serialLimiter = config.SerialRateLimiter is { } sl ? new TokenBucket(sl, MonotonicClock.Instance) : null;
        var serial = new Serial(serialOut, serialIrq, serialLimiter);
        pio.Insert(serial, Serial.Com1Port, Serial.PortCount);
        if (consoleInput) AttachConsoleInput(loop, serial, options.ConsoleInputFd);

        var i8042 = new I8042(NewIrq(vm, I8042.Irq, owned),
            () => exit.Request(ExitCodes.Ok, "Received KVM_EXIT_SHUTDOWN after the guest reset the i8042"));
        pio.Insert(i8042, I8042.BasePort, I8042.PortCount);
        return new LegacyDevices(serial, i8042);
    }

    /// <summary>
    /// Feeds the console input fd (stdin) into the serial device from the event loop, never more than its receive FIFO
    /// has room for: with the FIFO full, stdin leaves the loop until the guest has read half of it (the serial's
    /// <see cref="Serial.RxRoom"/>, an eventfd written from the vCPU thread), so typed input waits in the pipe instead of
    /// being dropped (a nested real-kernel test lost the end of a shell line this way), as Firecracker's serial does.
    /// </summary>
    // SAFETY: the read buffer is pinned with fixed for each read(2), which writes at most its length.
    private static unsafe void AttachConsoleInput(EventLoop loop, Serial serial, int fd)
    {
        var buf = new byte[64];
        bool watching = false, done = false;
        var room = new EventFd(nonBlocking: true);
        void OnInput(uint _)
        {
            int space = Math.Min(serial.RxSpace, buf.Length);
            if (space == 0)
            {
                loop.Remove(fd);
                watching = false;
                serial.NotifyWhenRoom();
                return;
            }
            // SAFETY: buf is pinned for the read, which writes at most space <= buf.Length bytes into it.
            fixed (byte* p = buf)
            {
                nint n = Libc.read(fd, p, (nuint)space);
                if (n <= 0) { loop.Remove(fd); watching = false; done = true; return; } // EOF or error: stop polling stdin
                int taken = serial.EnqueueInput(buf.AsSpan(0, (int)n));
                if (taken < n) serial.Metrics.MissedReadCount += n - taken; // only the VMM thread fills the FIFO: never
            }
        }
        try
        {
            loop.Add(fd, OnInput);
            watching = true;
        }
        catch (SysException)
        {
            // stdin is a regular file or /dev/null: epoll cannot watch it, and there is nothing to forward.
            room.Dispose();
            return;
        }
        serial.RxRoom = () => room.Write(); // lives as long as the VM's event loop: one fd per VM
        loop.Add(room.Fd, _ =>
        {
            room.Read();
            if (watching || done) return;
            loop.Add(fd, OnInput);
            watching = true;
        });
    }
}
