using IoTHub.Contracts;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Storage.Queries;

/// <summary>The latest stored value of one metric.</summary>
/// <param name="Metric">The metric name.</param>
/// <param name="Value">A number, <c>true</c>/<c>false</c> or a string, as the device sent it.</param>
/// <param name="Ts">Its timestamp (ISO 8601 UTC): the device's, or the receive time when the hub stamped it.</param>
public sealed record LatestValue(string Metric, object? Value, DateTimeOffset Ts);

/// <summary>The answer of <c>GET /api/v1/devices/{id}/telemetry/latest</c> (CONTRACT.md):
/// <c>{"deviceId", "values": [{"metric", "value", "ts"}]}</c>, metrics in name order.</summary>
/// <param name="DeviceId">The device.</param>
/// <param name="Values">One entry per metric it has sent, empty when it has sent none.</param>
public sealed record LatestTelemetry(string DeviceId, IReadOnlyList<LatestValue> Values);

/// <summary>The latest value of each metric of a device, or null when the device does not exist.</summary>
public sealed record GetLatestTelemetryQuery(string DeviceId) : IRequest<LatestTelemetry?>;

internal sealed class GetLatestTelemetry(HubDb db, IMediator mediator) : IRequestHandler<GetLatestTelemetryQuery, LatestTelemetry?>
{
    public async ValueTask<LatestTelemetry?> Handle(GetLatestTelemetryQuery q, CancellationToken ct)
    {
        if (!await mediator.Send(new DeviceExists(q.DeviceId), ct)) return null;
        var rows = await db.Set<Series>().AsNoTracking()
            .Where(s => s.DeviceId == q.DeviceId && s.LastTs != null)
            .OrderBy(s => s.Metric)
            .ToListAsync(ct);
        return new LatestTelemetry(q.DeviceId, rows.Select(s => new LatestValue(
            s.Metric, TelemetryValue.Of((ValueKind)s.LastKind!.Value, s.LastNumber, s.LastText), UnixTime.ToDateTime(s.LastTs!.Value))).ToList());
    }

    public static void Map(RouteGroupBuilder api) =>
        api.MapGet("/devices/{id}/telemetry/latest", async Task<Results<Ok<LatestTelemetry>, NotFoundProblem>> (string id, IMediator m, CancellationToken ct) =>
                await m.Send(new GetLatestTelemetryQuery(id), ct) is { } r ? TypedResults.Ok(r) : new NotFoundProblem($"Device '{id}' not found"))
            .WithName("GetLatestTelemetry").WithSummary("Latest value of each metric of a device").WithTags("Telemetry");
}

internal static class TelemetryValue
{
    public static object? Of(ValueKind kind, double? number, string? text) => kind switch
    {
        ValueKind.Number => number,
        ValueKind.Boolean => number is { } n && n != 0,
        _ => text,
    };
}
