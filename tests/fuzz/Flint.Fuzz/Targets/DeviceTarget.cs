using System.Buffers.Binary;
using Flint.Devices;
using Flint.Devices.Virtio;
using Flint.Memory;
using Flint.Sys;

namespace Flint.Fuzz.Targets;

/// <summary>
/// A virtio device driven only through its public surface, as the transport drives it: reset, queues pointed at
/// the layout of <see cref="QueueLayout"/>, Activate with the input's features, then ProcessQueue for each queue for
/// a few rounds. ProcessQueue must never throw on guest input; the devices end in catch-alls, so the target also
/// watches first-chance exceptions: only <see cref="SysException"/> (a host syscall failing, e.g. a write to a tap
/// that is down) is expected. The device is built once per process (opening files and taps per input would dwarf
/// the work under test) and reset per input. Ring contents are not checked afterwards: a guest may point its own
/// buffers at its rings (or balloon the page they are on), so any state of guest memory is a legal outcome.
/// </summary>
public abstract class DeviceTarget : IFuzzTarget
{
    private sealed class NullInterrupt : IInterrupt { public void Trigger() { } }

    private GuestMemory? _memory;
    private VirtQueue[] _queues = [];
    private VirtioDevice? _device;
    private readonly VirtioInterrupt _interrupt = new(new NullInterrupt());

    public abstract string Name { get; }
    public abstract string Description { get; }

    protected abstract VirtioDevice CreateDevice();

    public virtual bool IsAvailable(out string? reason) { reason = null; return true; }

    /// <summary>Device-specific work after the queue notifications of a round (e.g. a tap readiness event).</summary>
    protected virtual void AfterRound(VirtioDevice device) { }

    protected virtual bool IsExpected(Exception e) => e is SysException;

    public void Run(ReadOnlySpan<byte> input)
    {
        if (input.Length < QueueLayout.HeaderBytes) return;
        var dev = _device ??= CreateDevice();
        var mem = _memory ??= GuestMemory.Create([(0UL, QueueLayout.ImageSize), (QueueLayout.ImageSize, QueueLayout.SecondRegionSize)]);
        int nq = dev.QueueMaxSizes.Length;
        if (_queues.Length != nq)
        {
            _queues = new VirtQueue[nq];
            for (int i = 0; i < nq; i++) _queues[i] = new VirtQueue(dev.QueueMaxSizes[i]);
        }

        ulong features = BinaryPrimitives.ReadUInt64LittleEndian(input) & dev.AvailableFeatures | VirtioFeatures.Version1;
        byte control = input[8];
        var image = input[QueueLayout.HeaderBytes..];
        if (image.Length > (int)QueueLayout.ImageSize) image = image[..(int)QueueLayout.ImageSize];
        mem.Fill(0, QueueLayout.ImageSize + QueueLayout.SecondRegionSize, 0);
        mem.Write(0, image);

        ExceptionWatch.Begin();
        dev.Reset();
        ushort size = (ushort)(QueueLayout.MaxQueueSize >> ((control >> 3) & 3));
        for (int q = 0; q < nq; q++)
        {
            var vq = _queues[q];
            vq.Reset();
            vq.Size = Math.Min(size, vq.MaxSize);
            vq.DescTable = QueueLayout.DescTable(q);
            vq.AvailRing = QueueLayout.AvailRing(q);
            vq.UsedRing = QueueLayout.UsedRing(q);
            vq.Ready = true;
        }
        if (dev.Activate(mem, _queues, _interrupt, features))
        {
            int rounds = (control & 3) + 1;
            bool reverse = (control & 4) != 0;
            for (int r = 0; r < rounds; r++)
            {
                for (int i = 0; i < nq; i++) dev.ProcessQueue(reverse ? nq - 1 - i : i);
                AfterRound(dev);
            }
        }
        ExceptionWatch.End(IsExpected);
    }

    public abstract IEnumerable<(string Name, byte[] Data)> Seeds();
}
