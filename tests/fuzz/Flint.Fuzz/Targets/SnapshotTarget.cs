using Flint.Devices;
using Flint.Devices.Legacy;
using Flint.Snapshot;
using Flint.Vmm.Snapshot;
using Flint.Vmm.Tests;

namespace Flint.Fuzz.Targets;

/// <summary>
/// The snapshot state file parser (a state file is input like any other: a user may load any path) and, on a file that
/// parses, the device sections a load restores without KVM (serial, i8042). Bad input is reported only as
/// SnapshotFormatException; any other exception, thrown or caught, is a finding.
/// </summary>
public sealed class SnapshotTarget : IFuzzTarget
{
    private sealed class NoIrq : IInterrupt { public void Trigger() { } }

    public string Name => "snapshot";
    public string Description => "Flint.Snapshot.SnapshotFile.Parse over a whole state file, then Serial/I8042.RestoreState and the pci section's parser (PciStateCodec.Parse) on its sections; only SnapshotFormatException may be thrown";

    public bool IsAvailable(out string? reason) { reason = null; return true; }

    public void Run(ReadOnlySpan<byte> input)
    {
        var bytes = input.ToArray();
        ExceptionWatch.Begin();
        ParseAndRestore(bytes);
        // A mutated file almost never keeps a valid CRC, which would leave the section parsers unreached: the same
        // bytes again with the trailer made right (what a hostile file would carry).
        if (bytes.Length >= SnapshotFormat.HeaderSize + SnapshotFormat.TrailerSize)
        {
            int body = bytes.Length - SnapshotFormat.TrailerSize;
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(body), Crc64.Compute(bytes.AsSpan(0, body)));
            ParseAndRestore(bytes);
        }
        ExceptionWatch.End(static e => e is SnapshotFormatException);
    }

    private static void ParseAndRestore(byte[] bytes)
    {
        try
        {
            var f = SnapshotFile.Parse(bytes);
            foreach (var (name, _) in f.Sections)
            {
                try
                {
                    if (name == "serial") new Serial(null, new NoIrq()).RestoreState(f.Open(name));
                    else if (name == "i8042") new I8042(new NoIrq(), () => { }).RestoreState(f.Open(name));
                    else if (name == SnapshotSections.Pci) PciStateCodec.Parse(f.Open(name));
                    else
                    {
                        var r = f.Open(name);
                        while (r.Remaining > 0) r.String();
                    }
                }
                catch (SnapshotFormatException) { }
            }
        }
        catch (SnapshotFormatException) { }
    }

    public IEnumerable<(string, byte[])> Seeds()
    {
        var f = new SnapshotFile();
        var serial = new StateWriter();
        new Serial(null, new NoIrq()).SaveState(serial);
        f.Add("serial", serial);
        var kbd = new StateWriter();
        new I8042(new NoIrq(), () => { }).SaveState(kbd);
        f.Add("i8042", kbd);
        var cfg = new StateWriter();
        cfg.String("{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 64}}");
        f.Add("config", cfg);
        yield return ("devices", f.Serialize());
        f.Add(SnapshotSections.Pci, PciSectionSample.Write(PciStateCodec.Version, (1, Flint.Arch.X86.Layout.PciMmio64Start)));
        yield return ("pci", f.Serialize());
        yield return ("empty", new SnapshotFile().Serialize());
    }
}
