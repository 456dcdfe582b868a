// Telemetry is narrow and typed: a series (device, metric) is interned once, then each point is one row
// keyed by (series, timestamp, sequence): the sequence is 0 for a point at its device's own timestamp (so a resend is
// the same row) and the hub's arrival sequence number for a point the hub stamped (docs/adr/0005). Points of one
// series at one timestamp are ordered by sequence: "latest" and a window's "last" mean the greatest (ts, seq).
// Timestamps are Unix milliseconds (UTC) in every table.
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace IoTHub.Storage;

internal sealed class Series
{
    public long Id { get; set; }
    public string DeviceId { get; set; } = "";
    public string Metric { get; set; } = "";
    public long? LastTs { get; set; }
    public long LastSeq { get; set; }
    public byte? LastKind { get; set; }
    public double? LastNumber { get; set; }
    public string? LastText { get; set; }
}

internal sealed class TelemetryRow
{
    public long SeriesId { get; set; }
    public long Ts { get; set; }
    /// <summary>0 for a device-timestamped point; the arrival sequence number of a point the hub stamped.</summary>
    public long Seq { get; set; }
    public byte Kind { get; set; }
    public double? Number { get; set; }
    public string? Text { get; set; }
    /// <summary>The device's own timestamp, kept when it was replaced by receive time.</summary>
    public long? DeviceTs { get; set; }
}

/// <summary>A mergeable window aggregate of numeric points: count, sum, min, max and the last value.</summary>
internal abstract class Rollup
{
    public long SeriesId { get; set; }
    public long Bucket { get; set; }
    public long Count { get; set; }
    public double Sum { get; set; }
    public double Min { get; set; }
    public double Max { get; set; }
    public long LastTs { get; set; }
    public long LastSeq { get; set; }
    public double Last { get; set; }
}

internal sealed class Rollup1m : Rollup;
internal sealed class Rollup1h : Rollup;
internal sealed class Rollup1d : Rollup;

internal sealed class SeriesConfiguration : IEntityTypeConfiguration<Series>
{
    public void Configure(EntityTypeBuilder<Series> b)
    {
        b.ToTable("series");
        b.HasKey(x => x.Id);
        b.Property(x => x.Id).HasColumnName("id");
        b.Property(x => x.DeviceId).HasColumnName("device_id").HasMaxLength(64);
        b.Property(x => x.Metric).HasColumnName("metric").HasMaxLength(128);
        b.Property(x => x.LastTs).HasColumnName("last_ts");
        b.Property(x => x.LastSeq).HasColumnName("last_seq");
        b.Property(x => x.LastKind).HasColumnName("last_kind");
        b.Property(x => x.LastNumber).HasColumnName("last_number");
        b.Property(x => x.LastText).HasColumnName("last_text");
        b.HasIndex(x => new { x.DeviceId, x.Metric }).IsUnique();
    }
}

internal sealed class TelemetryRowConfiguration : IEntityTypeConfiguration<TelemetryRow>
{
    public void Configure(EntityTypeBuilder<TelemetryRow> b)
    {
        // Created by hand-written SQL in the migrations (partitioned on PostgreSQL, WITHOUT ROWID on SQLite).
        b.ToTable("telemetry", t => t.ExcludeFromMigrations());
        b.HasKey(x => new { x.SeriesId, x.Ts, x.Seq });
        b.Property(x => x.SeriesId).HasColumnName("series_id");
        b.Property(x => x.Ts).HasColumnName("ts");
        b.Property(x => x.Seq).HasColumnName("seq");
        b.Property(x => x.Kind).HasColumnName("kind");
        b.Property(x => x.Number).HasColumnName("number");
        b.Property(x => x.Text).HasColumnName("text");
        b.Property(x => x.DeviceTs).HasColumnName("device_ts");
    }
}

internal abstract class RollupConfiguration<T>(string table) : IEntityTypeConfiguration<T> where T : Rollup
{
    public void Configure(EntityTypeBuilder<T> b)
    {
        b.ToTable(table);
        b.HasKey(x => new { x.SeriesId, x.Bucket });
        b.Property(x => x.SeriesId).HasColumnName("series_id");
        b.Property(x => x.Bucket).HasColumnName("bucket");
        b.Property(x => x.Count).HasColumnName("count");
        b.Property(x => x.Sum).HasColumnName("sum");
        b.Property(x => x.Min).HasColumnName("min");
        b.Property(x => x.Max).HasColumnName("max");
        b.Property(x => x.LastTs).HasColumnName("last_ts");
        b.Property(x => x.LastSeq).HasColumnName("last_seq");
        b.Property(x => x.Last).HasColumnName("last");
    }
}

internal sealed class Rollup1mConfiguration() : RollupConfiguration<Rollup1m>("rollup_1m");
internal sealed class Rollup1hConfiguration() : RollupConfiguration<Rollup1h>("rollup_1h");
internal sealed class Rollup1dConfiguration() : RollupConfiguration<Rollup1d>("rollup_1d");
