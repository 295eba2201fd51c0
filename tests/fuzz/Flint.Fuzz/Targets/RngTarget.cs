using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Rng;

namespace Flint.Fuzz.Targets;

/// <summary>virtio-rng without a rate limiter: every writable buffer is filled from getrandom.</summary>
public sealed class RngTarget : DeviceTarget
{
    public override string Name => "virtio-rng";
    public override string Description => "VirtioRng (no rate limiter) request queue over guest memory built from the input";

    protected override VirtioDevice CreateDevice() => new VirtioRng();

    public override IEnumerable<(string, byte[])> Seeds()
    {
        var b = new ImageBuilder();
        b.Chain(0, (b.Buffer([], 64), 64, true));
        b.Chain(0, (b.Buffer([], 16), 16, true), (b.Buffer([], 300), 300, true));
        yield return ("two-requests", b.Build(~0UL));
        b = new ImageBuilder();
        b.Chain(0, (b.Buffer([], 8), 8, false), (b.Buffer([], 32), 32, true));
        b.Chain(0, (QueueLayout.ImageSize - 16, 64, true));
        yield return ("readable-and-straddle", b.Build(0, control: 2));
    }
}
