using IoTHub.Contracts;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Storage.Queries;

public sealed record LatestValue(string Metric, object? Value, DateTimeOffset Ts);

public sealed record LatestTelemetry(string DeviceId, IReadOnlyList<LatestValue> Values);

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
