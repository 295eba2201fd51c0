namespace Flint.Bench.Harness;

/// <summary>
/// Firecracker's memory promise as Firecracker measures it: the VMM's RSS while a 1 vCPU / 128 MiB microVM runs a
/// booted Linux guest, less the guest memory (every mapping at least as large as the guest's RAM, the rule of its
/// tests/host_tools/memory.py). The same split for QEMU on the same kernel and the same accelerator.
/// </summary>
internal sealed partial class Measurements
{
    private const int BootMemMiB = 128;

    public void MemoryAfterBoot()
    {
        const string sec = "bootmemory";
        const string over = "VMM overhead after boot: RSS less guest memory (max of 10 ms samples)";
        const string guest = "guest memory resident (mappings >= guest size)";
        string when = "Linux 6.1 minimal kernel, 1 vCPU / 128 MiB, from `Run /sbin/init` on";
        var fo = Add(sec, $"{over}; {when}", "Flint", "MiB");
        var qo = Add(sec, $"{over}; {when}", "QEMU", "MiB", QemuAccel.GuestRowLabel);
        var fg = Add(sec, $"{guest}, at the same moment", "Flint", "MiB");
        var qg = Add(sec, $"{guest}, at the same moment", "QEMU", "MiB", QemuAccel.GuestRowLabel);
        if (!HasKvm) fo.NotMeasured = fg.NotMeasured = NoKvm;
        for (int i = 0; i < _s.MemoryRuns; i++)
        {
            if (HasKvm) FlintBootedMemory(fo, fg);
            QemuBootedMemory(qo, qg);
        }
        Log($"memory after boot: flint overhead {Stats.Median(fo.Samples):F2} MiB; qemu ({QemuAccel.Name}) overhead {Stats.Median(qo.Samples):F2} MiB");
    }

    /// <summary>The largest overhead seen over the memory window (and the guest's resident memory at that sample); NaN when
    /// the VMM was gone before the first sample.</summary>
    private (double OverheadMiB, double GuestMiB) SampleOverhead(Child c)
    {
        long bestOver = 0, guestAtBest = 0;
        var end = System.Diagnostics.Stopwatch.GetTimestamp() + (long)(_s.MemoryWindow.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        do
        {
            long o, g;
            // The rootfs's init reboots right after it starts, so the VMM may be gone (or a zombie with empty smaps)
            // before the window ends: the samples taken while it ran count.
            try { (o, g) = c.MemoryExcludingGuest((long)BootMemMiB << 20); }
            catch (IOException) { break; }
            if (o > bestOver) (bestOver, guestAtBest) = (o, g);
            Thread.Sleep(10);
        } while (System.Diagnostics.Stopwatch.GetTimestamp() < end);
        return bestOver == 0 ? (double.NaN, double.NaN) : (bestOver / 1024.0, guestAtBest / 1024.0);
    }

    private static void AddSample(Series overhead, Series guest, (double O, double G) m)
    {
        if (double.IsNaN(m.O)) { Log("memory after boot: the VMM exited before the first sample"); return; }
        overhead.Samples.Add(m.O);
        guest.Samples.Add(m.G);
    }

    private void FlintBootedMemory(Series overhead, Series guest)
    {
        string rootfs = RootfsCopy();
        var (c, _, _) = BootFlint(_s.Kernel, "console=ttyS0 reboot=k panic=1", BootMemMiB, new BootDrive("rootfs", rootfs, true));
        using (c)
        {
            _ = c.WaitForLine("Run /sbin/init", Wait(300), out _) ?? throw new TimeoutException("flint: kernel never ran /sbin/init");
            AddSample(overhead, guest, SampleOverhead(c));
            c.Kill();
        }
        File.Delete(rootfs);
    }

    private void QemuBootedMemory(Series overhead, Series guest)
    {
        string sock = NewPath("q") + ".sock", rootfs = RootfsCopy();
        var (c, _) = StartQemuGuest(sock, ["-kernel", _s.Kernel, "-append", "console=ttyS0 reboot=k panic=1" + QemuAccel.LinuxCmdlineExtra + " root=/dev/vda rw",
            "-drive", $"file={rootfs},if=none,id=d,format=raw", "-device", "virtio-blk-device,drive=d"]);
        using (c)
        {
            _ = c.WaitForLine("Run /sbin/init", Wait(300), out _) ?? throw new TimeoutException("qemu: kernel never ran /sbin/init");
            AddSample(overhead, guest, SampleOverhead(c));
        }
        File.Delete(rootfs);
    }
}
