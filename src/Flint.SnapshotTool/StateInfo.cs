using System.Text;
using System.Text.Json;
using Flint.Snapshot;

namespace Flint.SnapshotTool;

/// <summary>
/// A readable summary of a Flint state file (docs/snapshots.md): format version, architecture, vCPUs, guest RAM's
/// regions, the memory file's kind (Full or Diff, page size) and the devices. The file is checked as a load checks
/// it (size, magic, version, architecture, CRC) before anything in it is read. Section names are the Vmm's
/// (Flint.Vmm.Snapshot.SnapshotSections; a test keeps the two equal): this tool reads files, it runs no VM.
/// </summary>
public static class StateInfo
{
    internal const string ConfigSection = "config", MemorySection = "memory", VcpuPrefix = "vcpu/", VirtioPrefix = "virtio/",
        MmdsSection = "mmds", PciSection = "pci";

    public static string Version(string path)
    {
        byte[] bytes = Read(path);
        try { return SnapshotFile.DescribeVersion(bytes); }
        catch (SnapshotFormatException e) { throw new ToolException($"Invalid state file {path}: {e.Message}"); }
    }

    public static string Describe(string path)
    {
        byte[] bytes = Read(path);
        SnapshotFile f;
        try { f = SnapshotFile.Parse(bytes); }
        catch (SnapshotFormatException e) { throw new ToolException($"Invalid state file {path}: {e.Message}"); }
        try { return Describe(f); }
        catch (Exception e) when (e is SnapshotFormatException or JsonException or InvalidOperationException or FormatException)
        {
            throw new ToolException($"Invalid state file {path}: {(e is SnapshotFormatException ? e.Message : "its config section is not the JSON Flint writes.")}");
        }
    }

    private static byte[] Read(string path)
    {
        try { return SnapshotFile.ReadBounded(path); }
        catch (SnapshotFormatException e) { throw new ToolException($"Invalid state file {path}: {e.Message}"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ToolException($"Could not open state file {path}: {OsText(e, path)}");
        }
    }

    internal static string Describe(SnapshotFile f)
    {
        var sb = new StringBuilder();
        var (ma, mi, pa) = f.Version;
        sb.Append("version: v").Append(ma).Append('.').Append(mi).Append('.').Append(pa).Append('\n');
        sb.Append("architecture: x86_64\n");
        int vcpus = f.SectionNames(VcpuPrefix).Count();
        sb.Append("vcpus: ").Append(vcpus).Append('\n');

        var mem = f.Open(MemorySection);
        int regions = mem.Count(64);
        ulong total = 0;
        var lines = new StringBuilder();
        for (int i = 0; i < regions; i++)
        {
            ulong gb = mem.U64(), size = mem.U64();
            lines.Append($"  region {i}: guest 0x{gb:x}, 0x{size:x} bytes, memory file offset 0x{total:x}\n");
            total += size;
        }
        mem.ExpectEnd();
        sb.Append($"memory: {total} bytes ({total >> 20} MiB) in {regions} region{(regions == 1 ? "" : "s")}\n").Append(lines);
        if (f.Has(HotplugMemoryState.SectionName)) Hotplug(HotplugMemoryState.Read(f.Open(HotplugMemoryState.SectionName)), sb);

        var mf = MemoryFileInfo.Of(f);
        sb.Append("memory file: ").Append(mf.Kind == MemoryFileKind.Full ? "full" : "diff")
          .Append(", page size ").Append(mf.PageSize);
        if (mf.Kind == MemoryFileKind.Diff)
            sb.Append(mf.Source == DirtySource.Mincore
                ? ", pages resident at the snapshot (mincore); merge it onto its base before loading"
                : ", pages dirtied since the previous snapshot (KVM dirty log and VMM writes); merge it onto its base before loading");
        sb.Append('\n');

        sb.Append("devices:\n");
        using (var doc = JsonDocument.Parse(f.Open(ConfigSection).RequiredString()))
            Devices(doc.RootElement, sb);
        foreach (var name in f.SectionNames(VirtioPrefix))
        {
            var r = f.Open(name);
            uint type = r.U32();
            sb.Append($"  {name}: virtio {VirtioName(type)}\n");
        }
        if (f.Has(PciSection)) sb.Append($"  pci: {PciFunctions(f)} virtio-pci function(s) (--enable-pci)\n");
        if (f.Has(MmdsSection)) sb.Append("  mmds: data store saved\n");
        return sb.ToString();
    }

    /// <summary>The function count of the pci section: after its version and the host bridge's registers.</summary>
    private static int PciFunctions(SnapshotFile f)
    {
        var r = f.Open(PciSection);
        r.U32();
        int regs = r.Count(1024);
        for (int i = 0; i < regs; i++) r.U32();
        return r.Count(31);
    }

    /// <summary>The virtio-mem area: where it lies in the guest and in the memory file, its geometry, what is plugged.</summary>
    private static void Hotplug(HotplugMemoryState h, StringBuilder sb)
    {
        ulong plugged = 0, slots = 0;
        for (ulong b = 0; b < h.BlockCount; b++) if (h.IsPlugged(b)) plugged++;
        for (ulong s = 0; s < h.SlotCount; s++) if (h.IsSlotPlugged(s)) slots++;
        sb.Append($"hotplug memory (virtio-mem): guest 0x{h.GuestBase:x}, 0x{h.RegionSize:x} bytes ({h.RegionSize >> 20} MiB), memory file offset 0x{h.FileOffset:x}\n");
        sb.Append($"  slots of {h.SlotSize >> 20} MiB: {slots} of {h.SlotCount} plugged (the others are holes in the memory file)\n");
        sb.Append($"  blocks of {h.BlockSize >> 20} MiB: {plugged} of {h.BlockCount} plugged; plugged {h.PluggedSize >> 20} MiB, requested {h.RequestedSize >> 20} MiB, usable {h.UsableRegionSize >> 20} MiB\n");
    }

    private static void Devices(JsonElement root, StringBuilder sb)
    {
        if (root.TryGetProperty("machine-config", out var mc) && mc.ValueKind == JsonValueKind.Object)
        {
            sb.Append("  machine-config:");
            foreach (var key in new[] { "vcpu_count", "mem_size_mib", "smt", "track_dirty_pages", "huge_pages" })
                if (mc.TryGetProperty(key, out var v)) sb.Append(' ').Append(key).Append('=').Append(v.GetRawText());
            sb.Append('\n');
        }
        List(root, "drives", "drive_id", "drive", sb);
        List(root, "network-interfaces", "iface_id", "network interface", sb);
        Single(root, "vsock", "vsock", sb);
        Single(root, "entropy", "entropy", sb);
        Single(root, "balloon", "balloon", sb);
        Single(root, "memory-hotplug", "memory-hotplug (virtio-mem)", sb);
    }

    private static void List(JsonElement root, string key, string idKey, string what, StringBuilder sb)
    {
        if (!root.TryGetProperty(key, out var arr) || arr.ValueKind != JsonValueKind.Array) return;
        foreach (var e in arr.EnumerateArray())
            if (e.ValueKind == JsonValueKind.Object && e.TryGetProperty(idKey, out var id) && id.ValueKind == JsonValueKind.String)
                sb.Append("  ").Append(what).Append(' ').Append(id.GetString()).Append('\n');
    }

    private static void Single(JsonElement root, string key, string what, StringBuilder sb)
    {
        if (root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Object) sb.Append("  ").Append(what).Append('\n');
    }

    /// <summary>Virtio device IDs (spec 5).</summary>
    private static string VirtioName(uint type) => type switch
    {
        1 => "net",
        2 => "block",
        4 => "rng",
        5 => "balloon",
        19 => "vsock",
        24 => "mem",
        _ => $"device type {type}",
    };

    internal static string OsText(Exception e, string path) => e switch
    {
        UnauthorizedAccessException when Directory.Exists(path) => "Is a directory (os error 21)",
        FileNotFoundException or DirectoryNotFoundException => "No such file or directory (os error 2)",
        UnauthorizedAccessException => "Permission denied (os error 13)",
        IOException { HResult: > 0 and < 4096 } io => $"{io.Message} (os error {io.HResult})",
        _ => "Input/output error (os error 5)",
    };
}
