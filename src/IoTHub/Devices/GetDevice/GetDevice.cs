using IoTHub.Contracts;
using IoTHub.Devices.Presence;
using IoTHub.Storage;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Devices.GetDevice;

/// <summary>One device as the API shows it, or null when no device has this id.</summary>
public sealed record GetDeviceQuery(string Id) : IRequest<DeviceView?>;

internal sealed class GetDeviceHandler(HubDb db, DevicePresence presence, TimeProvider time)
    : IRequestHandler<GetDeviceQuery, DeviceView?>, IRequestHandler<DeviceExists, bool>, IRequestHandler<ListDeviceScopes, IReadOnlyList<DeviceScope>>,
        IRequestHandler<IsDeviceOnline, bool>
{
    public async ValueTask<bool> Handle(IsDeviceOnline q, CancellationToken ct) => await db.Set<Device>().AnyAsync(x => x.Id == q.DeviceId && x.Online, ct);

    public async ValueTask<IReadOnlyList<DeviceScope>> Handle(ListDeviceScopes q, CancellationToken ct)
    {
        var devices = db.Set<Device>().AsNoTracking();
        if (q.DeviceId is not null) devices = devices.Where(d => d.Id == q.DeviceId);
        var rows = await devices.Select(d => new { d.Id, d.ProfileId, d.Tags }).ToListAsync(ct);
        return rows.Select(r => new DeviceScope(r.Id, r.ProfileId, r.Tags.Split(',', StringSplitOptions.RemoveEmptyEntries))).ToList();
    }

    public async ValueTask<DeviceView?> Handle(GetDeviceQuery q, CancellationToken ct)
    {
        var d = await db.Set<Device>().AsNoTracking().FirstOrDefaultAsync(x => x.Id == q.Id, ct);
        return d is null ? null : DeviceView.Of(d, presence, await DeviceView.ReportIntervalsAsync(db, ct), time.NowMs());
    }

    public async ValueTask<bool> Handle(DeviceExists q, CancellationToken ct) => await db.Set<Device>().AnyAsync(x => x.Id == q.DeviceId, ct);

    public static void Map(RouteGroupBuilder api) =>
        api.MapGet("/devices/{id}", async Task<Results<Ok<DeviceView>, NotFoundProblem>> (string id, IMediator m, CancellationToken ct) =>
                await m.Send(new GetDeviceQuery(id), ct) is { } d ? TypedResults.Ok(d) : DeviceResults.NotFound(id))
            .WithName("GetDevice").WithSummary("One device, with status, last seen and clock drift").WithTags("Devices");
}

internal static class DeviceResults
{
    public static NotFoundProblem NotFound(string id) => new($"Device '{id}' not found");
}
