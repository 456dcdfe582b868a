using IoTHub.Contracts;
using IoTHub.Devices.Presence;
using IoTHub.Storage;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Devices.ListDevices;

/// <summary>A page of devices in id order, filtered: <c>GET /api/v1/devices?search=&amp;status=&amp;tag=&amp;profile=&amp;cursor=&amp;limit=</c>.
/// Keyset-paged by id: the cursor is the last id of the previous page.</summary>
/// <param name="Search">Part of the id or name, case-insensitive; null or blank for all.</param>
/// <param name="Status">Only devices with this status (or only inactive ones); null for all.</param>
/// <param name="Tag">Only devices with this tag.</param>
/// <param name="Profile">Only devices with this profile id.</param>
/// <param name="Cursor">The <c>next</c> of the previous page; null for the first.</param>
/// <param name="Limit">Devices per page (the endpoint allows 1-1000, default 100).</param>
public sealed record ListDevicesQuery(string? Search, DeviceStatusFilter? Status, string? Tag, string? Profile, string? Cursor, int Limit) : IRequest<Page<DeviceView>>;

/// <summary>How many devices match the same filters as <see cref="ListDevicesQuery"/>.</summary>
public sealed record CountDevicesQuery(string? Search, DeviceStatusFilter? Status, string? Tag, string? Profile) : IRequest<int>;

internal sealed class ListDevicesHandler(HubDb db, DevicePresence presence, TimeProvider time)
    : IRequestHandler<ListDevicesQuery, Page<DeviceView>>, IRequestHandler<CountDevicesQuery, int>
{
    /// <summary>Rows read per round while scanning for inactive devices (decided in memory: see <see cref="DeviceView"/>).</summary>
    private const int ScanChunk = 500;

    public async ValueTask<Page<DeviceView>> Handle(ListDevicesQuery q, CancellationToken ct)
    {
        var intervals = await DeviceView.ReportIntervalsAsync(db, ct);
        var devices = Filtered(q.Search, q.Status, q.Tag, q.Profile, intervals);
        var now = time.NowMs();
        if (q.Status != DeviceStatusFilter.Inactive)
        {
            if (q.Cursor is { Length: > 0 } after) devices = devices.Where(d => string.Compare(d.Id, after) > 0);
            var page = await devices.OrderBy(d => d.Id).Take(q.Limit + 1).ToListAsync(ct);
            var items = page.Take(q.Limit).Select(d => DeviceView.Of(d, presence, intervals, now)).ToList();
            return new Page<DeviceView>(items, page.Count > q.Limit ? items[^1].Id : null);
        }
        var found = new List<DeviceView>(q.Limit + 1);
        await foreach (var view in InactiveAsync(devices, q.Cursor, intervals, now, ct))
        {
            found.Add(view);
            if (found.Count > q.Limit) break;
        }
        var shown = found.Take(q.Limit).ToList();
        return new Page<DeviceView>(shown, found.Count > q.Limit ? shown[^1].Id : null);
    }

    public async ValueTask<int> Handle(CountDevicesQuery q, CancellationToken ct)
    {
        // Report intervals only decide "inactive"; the devices page counts twice on every refresh, mostly without it.
        if (q.Status != DeviceStatusFilter.Inactive)
            return await Filtered(q.Search, q.Status, q.Tag, q.Profile, System.Collections.ObjectModel.ReadOnlyDictionary<string, int>.Empty).CountAsync(ct);
        var intervals = await DeviceView.ReportIntervalsAsync(db, ct);
        var devices = Filtered(q.Search, q.Status, q.Tag, q.Profile, intervals);
        var n = 0;
        await foreach (var _ in InactiveAsync(devices, null, intervals, time.NowMs(), ct)) n++;
        return n;
    }

    private IQueryable<Device> Filtered(string? search, DeviceStatusFilter? status, string? tag, string? profile, IReadOnlyDictionary<string, int> intervals)
    {
        var devices = db.Set<Device>().AsNoTracking().AsQueryable();
        if (!string.IsNullOrWhiteSpace(search))
        {
            var s = search.Trim().ToLowerInvariant();
            devices = devices.Where(d => d.Id.ToLower().Contains(s) || (d.Name != null && d.Name.ToLower().Contains(s)));
        }
        var withInterval = intervals.Keys.ToList();
        devices = status switch
        {
            DeviceStatusFilter.Online => devices.Where(d => d.Online),
            DeviceStatusFilter.Offline => devices.Where(d => !d.Online && d.LastSeen != null),
            DeviceStatusFilter.Never => devices.Where(d => !d.Online && d.LastSeen == null),
            // Candidates only: the stored lastSeen lags the live one by up to a minute (and is still empty for a device
            // first heard from over HTTP since), so the final word is DeviceView's, in memory.
            DeviceStatusFilter.Inactive => devices.Where(d => d.ProfileId != null && withInterval.Contains(d.ProfileId)),
            _ => devices,
        };
        if (!string.IsNullOrWhiteSpace(tag)) devices = devices.Where(d => d.Tags.Contains("," + tag + ","));
        if (!string.IsNullOrWhiteSpace(profile)) devices = devices.Where(d => d.ProfileId == profile);
        return devices;
    }

    /// <summary>The inactive devices among <paramref name="candidates"/> after <paramref name="cursor"/>, in id order,
    /// read a chunk at a time so that neither the fleet nor a page of it is held at once.</summary>
    private async IAsyncEnumerable<DeviceView> InactiveAsync(IQueryable<Device> candidates, string? cursor, IReadOnlyDictionary<string, int> intervals,
        long now, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        var after = cursor;
        while (true)
        {
            var from = after;
            var chunk = await (from is { Length: > 0 } ? candidates.Where(d => string.Compare(d.Id, from) > 0) : candidates)
                .OrderBy(d => d.Id).Take(ScanChunk).ToListAsync(ct);
            foreach (var d in chunk)
            {
                var view = DeviceView.Of(d, presence, intervals, now);
                if (view.Inactive) yield return view;
            }
            if (chunk.Count < ScanChunk) yield break;
            after = chunk[^1].Id;
        }
    }

    public static void Map(RouteGroupBuilder api) =>
        api.MapGet("/devices", async Task<Results<Ok<Page<DeviceView>>, ValidationProblem>> (string? search, string? status, string? tag, string? profile,
                string? cursor, int? limit, IMediator m, CancellationToken ct) =>
            {
                var filter = DeviceStatusNames.ParseFilter(status);
                if (status is not null && filter is null)
                    return TypedResults.ValidationProblem(new Dictionary<string, string[]>
                    {
                        ["status"] = [$"status must be one of {string.Join(", ", DeviceStatusNames.Filters)}"],
                    });
                if (PageLimit.Check(limit, 100, 1000, out var n) is { } badLimit) return badLimit;
                return TypedResults.Ok(await m.Send(new ListDevicesQuery(search, filter, tag, profile, cursor, n), ct));
            })
            .WithName("ListDevices").WithSummary("Search, filter and page through devices").WithTags("Devices");
}
