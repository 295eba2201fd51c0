namespace Flint.Vmm.Rpc;

/// <summary>
/// Firecracker's deprecation messages for API fields and endpoints it still accepts (its api_server/request/*.rs). A
/// request that uses one is served as usual; its answer carries "Deprecation: true", the message is logged as a
/// warning and deprecated_api.deprecated_http_api_calls counts it. A parser marks its result with
/// <see cref="ParsedRequest.Deprecation"/>; the API server does the rest for every route alike.
/// </summary>
public static class Deprecations
{
    public const string PutMachineConfigCpuTemplate = "PUT /machine-config: cpu_template field is deprecated.";
    public const string PatchMachineConfigCpuTemplate = "PATCH /machine-config: cpu_template field is deprecated.";
    public const string PutVsockId = "PUT /vsock: vsock_id field is deprecated.";
    public const string PutMmdsConfigV1 = "PUT /mmds/config: V1 is deprecated. Use V2 instead.";
    public const string PutSnapshotLoadMemFile = "PUT /snapshot/load: mem_file_path and enable_diff_snapshots fields are deprecated.";
}
