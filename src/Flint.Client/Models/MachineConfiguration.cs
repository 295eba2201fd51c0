namespace Flint.Client.Models;

/// <summary>
/// PUT and GET /machine-config: vCPUs, memory and CPU options (swagger <c>MachineConfiguration</c>). Pre-boot only.
/// A PUT resets the optional fields left out to their defaults; PATCH (<see cref="MachineConfigurationUpdate"/>) does not.
/// </summary>
public sealed record MachineConfiguration
{
    /// <summary>Number of vCPUs: 1 to 32 (with SMT, 1 or even).</summary>
    public int VcpuCount { get; init; }

    /// <summary>Guest memory in MiB.</summary>
    public int MemSizeMib { get; init; }

    /// <summary>Simultaneous multithreading (x86_64 only). Default false.</summary>
    public bool? Smt { get; init; }

    /// <summary>Deprecated static CPU template: C3, T2, T2S, T2CL, T2A, V1N1 or None (see <see cref="CpuTemplates"/>).</summary>
    public string? CpuTemplate { get; init; }

    /// <summary>Dirty page tracking, needed for diff snapshots. Default false.</summary>
    public bool? TrackDirtyPages { get; init; }

    /// <summary>"None" (default), "Transparent" or "2M" (see <see cref="HugePages"/>).</summary>
    public string? HugePages { get; init; }
}

/// <summary>PATCH /machine-config: the fields to change, the others keep their values. Pre-boot only.</summary>
public sealed record MachineConfigurationUpdate
{
    /// <summary>Number of vCPUs.</summary>
    public int? VcpuCount { get; init; }

    /// <summary>Guest memory in MiB.</summary>
    public int? MemSizeMib { get; init; }

    /// <summary>Simultaneous multithreading.</summary>
    public bool? Smt { get; init; }

    /// <summary>Deprecated static CPU template.</summary>
    public string? CpuTemplate { get; init; }

    /// <summary>Dirty page tracking.</summary>
    public bool? TrackDirtyPages { get; init; }

    /// <summary>Huge pages backing guest memory.</summary>
    public string? HugePages { get; init; }
}

/// <summary>Values of <see cref="MachineConfiguration.CpuTemplate"/>.</summary>
public static class CpuTemplates
{
    /// <summary>No template (the default).</summary>
    public const string None = "None";

    /// <summary>Intel C3-like.</summary>
    public const string C3 = "C3";

    /// <summary>Intel T2-like.</summary>
    public const string T2 = "T2";

    /// <summary>Intel T2S.</summary>
    public const string T2S = "T2S";

    /// <summary>Intel T2CL.</summary>
    public const string T2CL = "T2CL";

    /// <summary>AMD T2A.</summary>
    public const string T2A = "T2A";

    /// <summary>ARM V1N1.</summary>
    public const string V1N1 = "V1N1";
}

/// <summary>Values of <see cref="MachineConfiguration.HugePages"/> (and of <see cref="SnapshotLoadParams.HugePages"/>).</summary>
public static class HugePages
{
    /// <summary>Regular 4 KiB pages.</summary>
    public const string None = "None";

    /// <summary>Transparent huge pages (madvise MADV_HUGEPAGE).</summary>
    public const string Transparent = "Transparent";

    /// <summary>Explicit hugetlbfs 2 MiB pages.</summary>
    public const string TwoMiB = "2M";

    /// <summary>Snapshot load only: the value recorded in the snapshot (the default there).</summary>
    public const string Snapshot = "Snapshot";
}
