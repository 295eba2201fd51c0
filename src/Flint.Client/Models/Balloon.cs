namespace Flint.Client.Models;

/// <summary>PUT and GET /balloon: the balloon device (swagger <c>Balloon</c>).</summary>
public sealed record Balloon
{
    /// <summary>Target balloon size in MiB.</summary>
    public int AmountMib { get; init; }

    /// <summary>Whether the balloon deflates when the guest is under memory pressure.</summary>
    public bool DeflateOnOom { get; init; }

    /// <summary>Seconds between statistics refreshes; non-zero enables statistics. Server default: 0.</summary>
    public int? StatsPollingIntervalS { get; init; }

    /// <summary>Whether free page hinting is enabled.</summary>
    public bool? FreePageHinting { get; init; }

    /// <summary>Whether free page reporting is enabled.</summary>
    public bool? FreePageReporting { get; init; }
}

/// <summary>PATCH /balloon: a new target size (swagger <c>BalloonUpdate</c>).</summary>
public sealed record BalloonUpdate
{
    /// <summary>Target balloon size in MiB.</summary>
    public int AmountMib { get; init; }
}

/// <summary>PATCH /balloon/statistics: a new statistics polling interval (swagger <c>BalloonStatsUpdate</c>).</summary>
public sealed record BalloonStatsUpdate
{
    /// <summary>Seconds between statistics refreshes. Statistics cannot be turned on or off after boot.</summary>
    public int StatsPollingIntervalS { get; init; }
}

/// <summary>PATCH /balloon/hinting/start: starts a free page hinting run (swagger <c>BalloonStartCmd</c>).</summary>
public sealed record BalloonStartCmd
{
    /// <summary>Whether the VMM acknowledges on its own when the guest reports the run done.</summary>
    public bool? AcknowledgeOnStop { get; init; }
}

/// <summary>GET /balloon/hinting/status (swagger <c>BalloonHintingStatus</c>).</summary>
public sealed record BalloonHintingStatus
{
    /// <summary>The last command the host issued.</summary>
    public long HostCmd { get; init; }

    /// <summary>The last command the guest gave, if any.</summary>
    public long? GuestCmd { get; init; }
}
