namespace Flint.Fuzz.Targets;

/// <summary>Every fuzz target by name, in the order run.sh runs them (plus "selftest", which only checks the plumbing).</summary>
public static class TargetRegistry
{
    public static readonly string[] Names =
        ["http", "api-json", "mmds-http", "mmds-stack", "virtio-block", "virtio-net", "virtio-vsock", "virtio-rng", "virtio-balloon", "snapshot", "pci"];

    public static IFuzzTarget Create(string name) => name switch
    {
        "http" => new HttpParserTarget(),
        "api-json" => new ApiJsonTarget(),
        "mmds-http" => new MmdsHttpTarget(),
        "mmds-stack" => new MmdsStackTarget(),
        "virtio-block" => new BlockTarget(),
        "virtio-net" => new NetTarget(),
        "virtio-vsock" => new VsockTarget(),
        "virtio-rng" => new RngTarget(),
        "virtio-balloon" => new BalloonTarget(),
        "snapshot" => new SnapshotTarget(),
        "pci" => new PciTarget(),
        "selftest" => new SelfTestTarget(),
        _ => throw new ArgumentException($"unknown target '{name}' (known: {string.Join(", ", Names)})"),
    };
}
