// Time-series reads: raw points or window aggregates from the rollup tables. `auto` picks the finest
// resolution that answers with at most maxPoints points, so a 30-day chart reads hundreds of rollup rows,
// not millions of raw ones. Raw points of one millisecond (readings the hub stamped) come in arrival order, and a
// page never ends inside a millisecond, since `next` is a time. Every number in an answer is finite (FiniteAggregates).
using IoTHub.Contracts;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Storage.Queries;

/// <summary>A stored point, in the <c>points</c> of a <c>raw</c> series: <c>{"ts", "value", "deviceTs"}</c>.</summary>
/// <param name="Ts">Its time (ISO 8601 UTC, millisecond precision).</param>
/// <param name="Value">A number, <c>true</c>/<c>false</c> or a string.</param>
/// <param name="DeviceTs">The device's own time where the clock policy <c>serverTime</c> replaced it by the receive time; else null.</param>
public sealed record RawPoint(DateTimeOffset Ts, object? Value, DateTimeOffset? DeviceTs);

/// <summary>One window aggregate, in the <c>points</c> of a <c>1m</c>, <c>1h</c> or <c>1d</c> series (numeric metrics only):
/// <c>{"start", "count", "min", "max", "avg", "sum", "last"}</c>. Every number is finite.</summary>
/// <param name="Start">The window's start (ISO 8601 UTC); it lasts one resolution.</param>
/// <param name="Count">Points in the window.</param>
/// <param name="Min">Smallest value.</param>
/// <param name="Max">Largest value.</param>
/// <param name="Avg">Sum / count, kept within [min, max].</param>
/// <param name="Sum">Sum of the values, saturating at ±1.7976931348623157e308.</param>
/// <param name="Last">The value with the latest timestamp.</param>
public sealed record WindowPoint(DateTimeOffset Start, long Count, double Min, double Max, double Avg, double Sum, double Last);

/// <summary>The answer of <c>GET /api/v1/devices/{id}/telemetry</c> (CONTRACT.md):
/// <c>{"deviceId", "metric", "resolution", "points": [...], "next"}</c>.</summary>
/// <param name="DeviceId">The device.</param>
/// <param name="Metric">The metric.</param>
/// <param name="Resolution">What the points are: <c>raw</c>, <c>1m</c>, <c>1h</c> or <c>1d</c>; <c>auto</c> resolves to the
/// finest of these that answers with at most <c>maxPoints</c> points.</param>
/// <param name="Points"><see cref="RawPoint"/>s for <c>raw</c>, else <see cref="WindowPoint"/>s; oldest first, at most
/// <c>maxPoints</c>. Empty when the metric has no data.</param>
/// <param name="Next">When the range held more: the <c>from</c> of the next page (a page never ends inside a millisecond);
/// else null.</param>
public sealed record TelemetrySeries(string DeviceId, string Metric, string Resolution, IReadOnlyList<object> Points, DateTimeOffset? Next);

/// <summary>One metric of a device over a time range. The endpoint checks the parameters (400 naming each bad one).</summary>
/// <param name="DeviceId">The device (404 when it does not exist).</param>
/// <param name="Metric">The metric, required.</param>
/// <param name="From">Start of the range, inclusive (default: a day before <paramref name="To"/>).</param>
/// <param name="To">End of the range, exclusive (default: now); after <paramref name="From"/>.</param>
/// <param name="Resolution"><c>raw</c>, <c>1m</c>, <c>1h</c>, <c>1d</c> or <c>auto</c> (default).</param>
/// <param name="MaxPoints">Most points in one answer, 1-10,000 (default 1,000).</param>
public sealed record QueryTelemetryRequest(string DeviceId, string Metric, DateTimeOffset From, DateTimeOffset To, string Resolution, int MaxPoints)
    : IRequest<TelemetrySeries?>;

internal sealed class QueryTelemetry(HubDb db, IMediator mediator) : IRequestHandler<QueryTelemetryRequest, TelemetrySeries?>
{
    public static readonly string[] Resolutions = ["raw", "1m", "1h", "1d", "auto"];
    public const int DefaultMaxPoints = 1_000;
    public const int MaxMaxPoints = 10_000;

    public async ValueTask<TelemetrySeries?> Handle(QueryTelemetryRequest q, CancellationToken ct)
    {
        if (!await mediator.Send(new DeviceExists(q.DeviceId), ct)) return null;
        var seriesId = await db.Set<Series>().AsNoTracking()
            .Where(s => s.DeviceId == q.DeviceId && s.Metric == q.Metric).Select(s => (long?)s.Id).FirstOrDefaultAsync(ct);
        var from = q.From.ToUnixTimeMilliseconds();
        var to = q.To.ToUnixTimeMilliseconds();
        if (seriesId is not { } sid) return new TelemetrySeries(q.DeviceId, q.Metric, q.Resolution == "auto" ? "raw" : q.Resolution, [], null);

        var resolution = q.Resolution;
        if (resolution == "auto")
        {
            var rawCount = await db.Set<TelemetryRow>().Where(t => t.SeriesId == sid && t.Ts >= from && t.Ts < to).OrderBy(t => t.Ts).ThenBy(t => t.Seq).Take(q.MaxPoints + 1).CountAsync(ct);
            resolution = rawCount <= q.MaxPoints ? "raw" : "1d";
            for (var r = 0; r < 3 && rawCount > q.MaxPoints; r++)
            {
                if ((to - from) / WindowResolution.WidthsMs[r] + 1 <= q.MaxPoints) { resolution = WindowResolution.Names[r]; break; }
            }
        }

        return resolution switch
        {
            "raw" => await RawAsync(q, sid, from, to, ct),
            "1m" => await WindowsAsync(db.Set<Rollup1m>(), q, sid, from, to, resolution, ct),
            "1h" => await WindowsAsync(db.Set<Rollup1h>(), q, sid, from, to, resolution, ct),
            _ => await WindowsAsync(db.Set<Rollup1d>(), q, sid, from, to, resolution, ct),
        };
    }

    private async Task<TelemetrySeries> RawAsync(QueryTelemetryRequest q, long sid, long from, long to, CancellationToken ct)
    {
        var range = db.Set<TelemetryRow>().AsNoTracking().Where(t => t.SeriesId == sid && t.Ts < to);
        var rows = await Page(range.Where(t => t.Ts >= from).OrderBy(t => t.Ts).ThenBy(t => t.Seq).Take(q.MaxPoints + 1), ct);
        long? next = null;
        if (rows.Count > q.MaxPoints)
        {
            // `next` is the time the following page starts from, so this one ends before the millisecond it cuts into...
            next = rows[q.MaxPoints].Ts;
            var end = q.MaxPoints;
            while (end > 0 && rows[end - 1].Ts == next) end--;
            rows.RemoveRange(end, rows.Count - end);
            if (end == 0)
            {
                // ...unless the whole page is that one millisecond: then it holds all of it, and `next` is what follows.
                var ms = next.Value;
                rows = await Page(range.Where(t => t.Ts == ms).OrderBy(t => t.Seq), ct);
                next = await range.Where(t => t.Ts > ms).OrderBy(t => t.Ts).Select(t => (long?)t.Ts).FirstOrDefaultAsync(ct);
            }
        }
        var points = rows.Select(r => (object)new RawPoint(UnixTime.ToDateTime(r.Ts), TelemetryValue.Of((ValueKind)r.Kind, r.Number, r.Text), UnixTime.ToDateTime(r.DeviceTs))).ToList();
        return new TelemetrySeries(q.DeviceId, q.Metric, "raw", points, UnixTime.ToDateTime(next));
    }

    private static Task<List<RawRow>> Page(IQueryable<TelemetryRow> rows, CancellationToken ct) =>
        rows.Select(t => new RawRow(t.Ts, t.Kind, t.Number, t.Text, t.DeviceTs)).ToListAsync(ct);

    private sealed record RawRow(long Ts, byte Kind, double? Number, string? Text, long? DeviceTs);

    private static async Task<TelemetrySeries> WindowsAsync<T>(IQueryable<T> table, QueryTelemetryRequest q, long sid, long from, long to, string resolution, CancellationToken ct)
        where T : Rollup
    {
        var width = WindowResolution.WidthsMs[Array.IndexOf(WindowResolution.Names, resolution)];
        var firstBucket = from - (((from % width) + width) % width);
        var rows = await table.AsNoTracking()
            .Where(r => r.SeriesId == sid && r.Bucket >= firstBucket && r.Bucket < to)
            .OrderBy(r => r.Bucket).Take(q.MaxPoints + 1)
            .ToListAsync(ct);
        DateTimeOffset? next = rows.Count > q.MaxPoints ? UnixTime.ToDateTime(rows[q.MaxPoints].Bucket) : null;
        var points = rows.Take(q.MaxPoints)
            .Select(r => (object)new WindowPoint(UnixTime.ToDateTime(r.Bucket), r.Count, FiniteAggregates.Finite(r.Min), FiniteAggregates.Finite(r.Max),
                FiniteAggregates.Average(r.Sum, r.Count, r.Min, r.Max), FiniteAggregates.Finite(r.Sum), FiniteAggregates.Finite(r.Last))).ToList();
        return new TelemetrySeries(q.DeviceId, q.Metric, resolution, points, next);
    }

    public static void Map(RouteGroupBuilder api) =>
        api.MapGet("/devices/{id}/telemetry", async Task<Results<Ok<TelemetrySeries>, ValidationProblem, NotFoundProblem>> (string id, string? metric,
                DateTimeOffset? from, DateTimeOffset? to, string? resolution, int? maxPoints, IMediator m, TimeProvider time, CancellationToken ct) =>
            {
                var errors = new Dictionary<string, string[]>();
                if (string.IsNullOrWhiteSpace(metric)) errors["metric"] = ["metric is required"];
                resolution ??= "auto";
                if (!Resolutions.Contains(resolution)) errors["resolution"] = [$"resolution must be one of {string.Join(", ", Resolutions)}"];
                var max = maxPoints ?? DefaultMaxPoints;
                if (max is < 1 or > MaxMaxPoints) errors["maxPoints"] = [$"maxPoints must be between 1 and {MaxMaxPoints}"];
                var end = to ?? time.GetUtcNow();
                var start = from ?? end.AddDays(-1);
                if (start >= end) errors["from"] = ["from must be before to"];
                if (errors.Count > 0) return TypedResults.ValidationProblem(errors);
                var r = await m.Send(new QueryTelemetryRequest(id, metric!, start, end, resolution, max), ct);
                return r is null ? new NotFoundProblem($"Device '{id}' not found") : TypedResults.Ok(r);
            })
            .WithName("QueryTelemetry").WithSummary("Raw points or window aggregates of one metric over a time range").WithTags("Telemetry");
}
