using IoTHub.Contracts;
using IoTHub.Devices.Presence;
using IoTHub.Storage;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Devices.ListDevices;

/// <summary>Keyset-paged by id: the cursor is the last id of the previous page.</summary>
public sealed record ListDevicesQuery(string? Search, string? Status, string? Tag, string? Profile, string? Cursor, int Limit) : IRequest<Page<DeviceView>>;

internal sealed class ListDevicesHandler(HubDb db, DevicePresence presence, TimeProvider time) : IRequestHandler<ListDevicesQuery, Page<DeviceView>>
{
    public static readonly string[] Statuses = ["online", "offline", "never"];

    public async ValueTask<Page<DeviceView>> Handle(ListDevicesQuery q, CancellationToken ct)
    {
        var devices = db.Set<Device>().AsNoTracking().AsQueryable();
        if (!string.IsNullOrWhiteSpace(q.Search))
        {
            var s = q.Search.Trim().ToLowerInvariant();
            devices = devices.Where(d => d.Id.ToLower().Contains(s) || (d.Name != null && d.Name.ToLower().Contains(s)));
        }
        devices = q.Status switch
        {
            "online" => devices.Where(d => d.Online),
            "offline" => devices.Where(d => !d.Online && d.LastSeen != null),
            "never" => devices.Where(d => !d.Online && d.LastSeen == null),
            _ => devices,
        };
        if (!string.IsNullOrWhiteSpace(q.Tag)) devices = devices.Where(d => d.Tags.Contains("," + q.Tag + ","));
        if (!string.IsNullOrWhiteSpace(q.Profile)) devices = devices.Where(d => d.ProfileId == q.Profile);
        if (q.Cursor is { Length: > 0 } after) devices = devices.Where(d => string.Compare(d.Id, after) > 0);
        var page = await devices.OrderBy(d => d.Id).Take(q.Limit + 1).ToListAsync(ct);
        var intervals = await DeviceView.ReportIntervalsAsync(db, ct);
        var now = time.NowMs();
        var items = page.Take(q.Limit).Select(d => DeviceView.Of(d, presence, intervals, now)).ToList();
        return new Page<DeviceView>(items, page.Count > q.Limit ? items[^1].Id : null);
    }

    public static void Map(RouteGroupBuilder api) =>
        api.MapGet("/devices", async (string? search, string? status, string? tag, string? profile, string? cursor, int? limit, IMediator m, CancellationToken ct) =>
            {
                if (status is not null && !Statuses.Contains(status))
                    return Results.ValidationProblem(new Dictionary<string, string[]> { ["status"] = [$"status must be one of {string.Join(", ", Statuses)}"] });
                if (PageLimit.Check(limit, 100, 1000, out var n) is { } badLimit) return badLimit;
                return Results.Ok(await m.Send(new ListDevicesQuery(search, status, tag, profile, cursor, n), ct));
            })
            .WithName("ListDevices").WithSummary("Search, filter and page through devices").WithTags("Devices")
            .Produces<Page<DeviceView>>().ProducesValidationProblem();
}
