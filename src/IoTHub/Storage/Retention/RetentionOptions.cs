namespace IoTHub.Storage.Retention;

/// <summary>Section <c>Retention</c>: how long each resolution is kept. Empty means forever.</summary>
public sealed class RetentionOptions
{
    public const string SectionName = "Retention";

    public TimeSpan? Raw { get; set; } = TimeSpan.FromDays(30);
    public TimeSpan? OneMinute { get; set; } = TimeSpan.FromDays(90);
    public TimeSpan? OneHour { get; set; } = TimeSpan.FromDays(730);
    public TimeSpan? OneDay { get; set; }

    /// <summary>How often the retention job runs (it also runs once shortly after start).</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromHours(1);

    public TimeSpan?[] ByResolution => [Raw, OneMinute, OneHour, OneDay];
}
