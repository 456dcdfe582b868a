using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Devices.ListDevices;

internal sealed class FleetSummaryHandler(HubDb db) : IRequestHandler<FleetSummaryQuery, FleetSummary>
{
    public async ValueTask<FleetSummary> Handle(FleetSummaryQuery q, CancellationToken ct)
    {
        var groups = await db.Set<Device>().AsNoTracking()
            .GroupBy(d => new { d.Online, Seen = d.LastSeen != null, d.Enabled })
            .Select(g => new { g.Key.Online, g.Key.Seen, g.Key.Enabled, Count = g.Count() }).ToListAsync(ct);
        return new FleetSummary(groups.Sum(g => g.Count), groups.Where(g => g.Online).Sum(g => g.Count),
            groups.Where(g => !g.Online && g.Seen).Sum(g => g.Count), groups.Where(g => !g.Online && !g.Seen).Sum(g => g.Count),
            groups.Where(g => !g.Enabled).Sum(g => g.Count));
    }
}
