using System.Text.Json;

namespace Flint.Vmm.Snapshot;

/// <summary>PUT /snapshot/load's body, already checked against the swagger schema by ApiRequestParser.</summary>
public sealed record SnapshotLoadParams(
    string SnapshotPath,
    string MemBackendType,
    string MemBackendPath,
    bool TrackDirtyPages,
    bool ResumeVm,
    bool ClockRealtime,
    IReadOnlyList<(string IfaceId, string HostDevName)> NetworkOverrides,
    string? VsockUdsPath)
{
    public static SnapshotLoadParams From(string snapshotPath, JsonElement body)
    {
        string type = "File", path;
        if (body.TryGetProperty("mem_backend", out var mb) && mb.ValueKind == JsonValueKind.Object)
        {
            type = Str(mb, "backend_type");
            path = Str(mb, "backend_path");
        }
        else path = Str(body, "mem_file_path");
        // enable_diff_snapshots is the deprecated name of track_dirty_pages (Firecracker ORs them).
        bool track = Flag(body, "track_dirty_pages") || Flag(body, "enable_diff_snapshots");
        var overrides = new List<(string, string)>();
        if (body.TryGetProperty("network_overrides", out var no) && no.ValueKind == JsonValueKind.Array)
            foreach (var o in no.EnumerateArray())
                overrides.Add((o.GetProperty("iface_id").GetString()!, o.GetProperty("host_dev_name").GetString()!));
        string? uds = body.TryGetProperty("vsock_override", out var vo) && vo.ValueKind == JsonValueKind.Object
            ? vo.GetProperty("uds_path").GetString() : null;
        return new SnapshotLoadParams(snapshotPath, type, path, track, Flag(body, "resume_vm"), Flag(body, "clock_realtime"), overrides, uds);
    }

    /// <summary>The parser's schema guarantees these strings; a body that still lacks one is the client's error, not a crash.</summary>
    private static string Str(JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()!
            : throw new SnapshotException("Load snapshot error: missing field: either `mem_backend` or `mem_file_path` is required");

    private static bool Flag(JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.True;
}

/// <summary>PUT /snapshot/create's body.</summary>
public sealed record SnapshotCreateParams(string SnapshotPath, string MemFilePath, bool Diff);
