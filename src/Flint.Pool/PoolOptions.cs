namespace Flint.Pool;

/// <summary>Where and how the daemon starts slots.</summary>
public sealed record PoolOptions
{
    /// <summary>Holds <c>functions/&lt;name&gt;/</c> (each function's files) and <c>jails/</c> (the jailer's chroot base).
    /// One filesystem, so slots get hard links, not copies.</summary>
    public string PoolDir { get; init; } = "/srv/flint-pool";
    public required string JailerPath { get; init; }
    public required string FlintPath { get; init; }
    /// <summary>Slot i runs as uid = gid = UidBase + k for the lowest k free: each slot has its own uid.</summary>
    public uint UidBase { get; init; } = 20000;
    public uint UidCount { get; init; } = 10000;
    /// <summary>1 or 2; null: 2 where /sys/fs/cgroup is the unified hierarchy, else 1.</summary>
    public int? CgroupVersion { get; init; }
    /// <summary>Each slot's cgroup is &lt;controller&gt;/&lt;ParentCgroup&gt;/&lt;slot id&gt;.</summary>
    public string ParentCgroup { get; init; } = "flint-pool";
    /// <summary>When a function sets no cgroups: a memory limit of guest RAM + this, and a pids limit.</summary>
    public bool DefaultCgroupLimits { get; init; } = true;
    public int MemoryOverheadMib { get; init; } = 64;
    public int PidsMax { get; init; } = 256;
    public string CgroupRoot { get; init; } = "/sys/fs/cgroup";

    public string JailsDir => Path.Combine(PoolDir, "jails");
    public string FunctionsDir => Path.Combine(PoolDir, "functions");
    public int ResolvedCgroupVersion => CgroupVersion ?? (File.Exists(Path.Combine(CgroupRoot, "cgroup.controllers")) ? 2 : 1);
}
