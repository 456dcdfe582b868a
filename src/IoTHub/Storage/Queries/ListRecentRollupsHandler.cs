using IoTHub.Contracts;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Storage.Queries;

/// <summary>Recent rollup rows, so the window tracker can resume the windows that were open when the hub stopped.</summary>
internal sealed class ListRecentRollupsHandler(HubDb db) : IRequestHandler<ListRecentRollups, IReadOnlyList<RecentRollup>>
{
    public async ValueTask<IReadOnlyList<RecentRollup>> Handle(ListRecentRollups q, CancellationToken ct)
    {
        var result = new List<RecentRollup>();
        result.AddRange(await Query(db.Set<Rollup1m>(), 0, q.SinceByResolution[0], ct));
        result.AddRange(await Query(db.Set<Rollup1h>(), 1, q.SinceByResolution[1], ct));
        result.AddRange(await Query(db.Set<Rollup1d>(), 2, q.SinceByResolution[2], ct));
        return result;
    }

    private async Task<List<RecentRollup>> Query<T>(IQueryable<T> table, int resolution, long since, CancellationToken ct) where T : Rollup =>
        (await table.AsNoTracking().Where(r => r.Bucket >= since)
            .Join(db.Set<Series>(), r => r.SeriesId, s => s.Id, (r, s) => new { r.SeriesId, r.Bucket, s.DeviceId, s.Metric })
            .ToListAsync(ct))
        .Select(x => new RecentRollup(new RollupKey(x.SeriesId, resolution, x.Bucket), x.DeviceId, x.Metric)).ToList();
}
