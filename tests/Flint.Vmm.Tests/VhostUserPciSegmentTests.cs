using Flint.Devices.Virtio.VhostUser;

namespace Flint.Vmm.Tests;

/// <summary>
/// A vhost-user drive as a function on the PCI segment, without KVM, against qemu-storage-daemon: its doorbell is a
/// KVM ioeventfd the backend polls and the event loop must leave alone (reading it would steal the guest's kicks),
/// its backend's call fd is polled by the event loop instead (the relay to the queue's MSI-X vector), and an unplug
/// takes all of it back and closes the connection and the call fd.
/// </summary>
[Collection(FdCountingCollection.Name)]
public sealed class VhostUserPciSegmentTests() : PciSegmentFixture("flint-vupci-")
{
    [SkippableFact]
    public void The_doorbell_is_the_backends_the_call_fd_the_event_loops_and_an_unplug_takes_both_back()
    {
        Skip.IfNot(File.Exists(VhostUserBackendProcess.QemuStorageDaemon), "qemu-storage-daemon is not installed");
        string image = Path.Combine(_dir, "vu.img"), sock = Path.Combine(_dir, "vu.sock");
        File.WriteAllBytes(image, new byte[64 * 512]);
        using var backend = VhostUserBackendProcess.ServeBlock(image, sock);
        backend.WaitForSocket(sock, TimeSpan.FromSeconds(60));
        int loopBefore = _loop.Count;

        var dev = new VhostUserBlock(VhostUserFrontend.Connect(sock, TimeSpan.FromSeconds(5)), "vu", writeback: false);
        dev.RelayInterruptsThroughVmm();
        var f = _pci.Plug(dev, "vu");
        dev.UseDoorbells(f.Transport.QueueEvents);

        Assert.Equal([(f.Transport.QueueEvents[0].Fd, f.Transport.NotifyAddress(0))], _vm.Doorbells);
        var call = Assert.Single(dev.EventSources);
        Assert.Equal(loopBefore + 1, _loop.Count); // the call fd only, not the doorbell
        Assert.Contains(call.Fd, f.LoopFds);
        Assert.DoesNotContain(f.Transport.QueueEvents[0].Fd, f.LoopFds);

        _pci.Unplug(f);

        Assert.Equal(loopBefore, _loop.Count);
        Assert.Empty(_vm.Doorbells);
        Assert.Empty(_vm.Irqfds);
        Assert.Empty(_owned);
        Assert.False(File.Exists($"/proc/self/fd/{call.Fd}") && IsEventFd(call.Fd), "the call eventfd is still open");
    }

    private static bool IsEventFd(int fd)
    {
        try { return new FileInfo($"/proc/self/fd/{fd}").LinkTarget?.Contains("eventfd") == true; }
        catch (IOException) { return false; }
    }
}
