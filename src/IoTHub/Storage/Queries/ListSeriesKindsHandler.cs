using IoTHub.Contracts;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Storage.Queries;

internal sealed class ListSeriesKindsHandler(HubDb db) : IRequestHandler<ListSeriesKinds, IReadOnlyList<SeriesKind>>
{
    public async ValueTask<IReadOnlyList<SeriesKind>> Handle(ListSeriesKinds q, CancellationToken ct) =>
        await db.Set<Series>().AsNoTracking().Where(s => s.LastKind != null)
            .Select(s => new SeriesKind(s.DeviceId, s.Metric, (ValueKind)s.LastKind!.Value)).ToListAsync(ct);
}
