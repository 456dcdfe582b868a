namespace IoTHub.Storage.Retention;

/// <summary>Section <c>Retention</c>: how long each resolution is kept. Empty means forever.</summary>
public sealed class RetentionOptions
{
    /// <summary>The configuration section: <c>Retention</c>.</summary>
    public const string SectionName = "Retention";

    /// <summary>How long raw points are kept (default 30 days; <c>d.hh:mm:ss</c>). On PostgreSQL whole daily partitions are
    /// dropped once all their rows are older; on SQLite rows are deleted.</summary>
    public TimeSpan? Raw { get; set; } = TimeSpan.FromDays(30);

    /// <summary>How long 1-minute windows are kept (default 90 days).</summary>
    public TimeSpan? OneMinute { get; set; } = TimeSpan.FromDays(90);

    /// <summary>How long 1-hour windows are kept (default 730 days).</summary>
    public TimeSpan? OneHour { get; set; } = TimeSpan.FromDays(730);

    /// <summary>How long 1-day windows are kept (default forever).</summary>
    public TimeSpan? OneDay { get; set; }

    /// <summary>How often the retention job runs (it also runs once shortly after start).</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>The four periods in resolution order: raw, 1m, 1h, 1d (null: forever). Each must be positive.</summary>
    public TimeSpan?[] ByResolution => [Raw, OneMinute, OneHour, OneDay];
}
