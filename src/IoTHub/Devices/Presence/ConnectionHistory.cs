// Every broker connection of a device: when, from where, over which protocol, and why it ended.
using IoTHub.Contracts;
using IoTHub.Devices.GetDevice;
using IoTHub.Storage;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace IoTHub.Devices.Presence;

internal sealed class DeviceConnection
{
    public long Id { get; set; }
    public string DeviceId { get; set; } = "";
    public string ClientId { get; set; } = "";
    public string Protocol { get; set; } = "";
    public string? RemoteAddress { get; set; }
    public long ConnectedAt { get; set; }
    public long? DisconnectedAt { get; set; }
    public string? DisconnectReason { get; set; }
}

internal sealed class DeviceConnectionConfiguration : IEntityTypeConfiguration<DeviceConnection>
{
    public void Configure(EntityTypeBuilder<DeviceConnection> b)
    {
        b.ToTable("device_connections");
        b.HasKey(x => x.Id);
        b.Property(x => x.Id).HasColumnName("id").ValueGeneratedOnAdd();
        b.Property(x => x.DeviceId).HasColumnName("device_id").HasMaxLength(64);
        b.Property(x => x.ClientId).HasColumnName("client_id").HasMaxLength(256);
        b.Property(x => x.Protocol).HasColumnName("protocol").HasMaxLength(16);
        b.Property(x => x.RemoteAddress).HasColumnName("remote_address").HasMaxLength(100);
        b.Property(x => x.ConnectedAt).HasColumnName("connected_at");
        b.Property(x => x.DisconnectedAt).HasColumnName("disconnected_at");
        b.Property(x => x.DisconnectReason).HasColumnName("disconnect_reason").HasMaxLength(200);
        b.HasIndex(x => new { x.DeviceId, x.Id });
    }
}

/// <summary>One broker connection of a device, an item of <c>GET /api/v1/devices/{id}/connections</c> (the newest 500 are kept).</summary>
/// <param name="ClientId">The MQTT client id it connected with (assigned by the hub when it sent none).</param>
/// <param name="Protocol"><c>mqtt3</c> (3.1.1) or <c>mqtt5</c>.</param>
/// <param name="RemoteAddress">The peer's IP address, or null when unknown.</param>
/// <param name="ConnectedAt">When the CONNECT was accepted (ISO 8601 UTC).</param>
/// <param name="DisconnectedAt">When it ended, or null while it is open.</param>
/// <param name="DisconnectReason">Why it ended: "clean disconnect", "taken over by a new connection", "connection lost
/// or keep-alive timeout", "server shutting down", ...; null while open.</param>
public sealed record ConnectionView(string ClientId, string Protocol, string? RemoteAddress, DateTimeOffset ConnectedAt,
    DateTimeOffset? DisconnectedAt, string? DisconnectReason);

/// <summary>Newest first; the cursor is the last row id of the previous page.</summary>
public sealed record ListConnectionsQuery(string DeviceId, long? Cursor, int Limit) : IRequest<Page<ConnectionView>?>;

internal sealed class ListConnectionsHandler(HubDb db) : IRequestHandler<ListConnectionsQuery, Page<ConnectionView>?>
{
    /// <summary>Rows kept per device; older ones are pruned when a new connection is recorded.</summary>
    public const int KeptPerDevice = 500;

    public async ValueTask<Page<ConnectionView>?> Handle(ListConnectionsQuery q, CancellationToken ct)
    {
        if (!await db.Set<Device>().AnyAsync(d => d.Id == q.DeviceId, ct)) return null;
        var rows = db.Set<DeviceConnection>().AsNoTracking().Where(c => c.DeviceId == q.DeviceId);
        if (q.Cursor is { } before) rows = rows.Where(c => c.Id < before);
        var page = await rows.OrderByDescending(c => c.Id).Take(q.Limit + 1).ToListAsync(ct);
        var items = page.Take(q.Limit).Select(c => new ConnectionView(c.ClientId, c.Protocol, c.RemoteAddress, UnixTime.ToDateTime(c.ConnectedAt),
            UnixTime.ToDateTime(c.DisconnectedAt), c.DisconnectReason)).ToList();
        return new Page<ConnectionView>(items, page.Count > q.Limit ? page[q.Limit - 1].Id.ToString(System.Globalization.CultureInfo.InvariantCulture) : null);
    }

    public static void Map(RouteGroupBuilder api) =>
        api.MapGet("/devices/{id}/connections", async Task<Results<Ok<Page<ConnectionView>>, ValidationProblem, NotFoundProblem>> (string id, long? cursor, int? limit,
                IMediator m, CancellationToken ct) =>
            {
                if (PageLimit.Check(limit, 50, 500, out var n) is { } badLimit) return badLimit;
                return await m.Send(new ListConnectionsQuery(id, cursor, n), ct) is { } page ? TypedResults.Ok(page) : DeviceResults.NotFound(id);
            })
            .WithName("ListDeviceConnections").WithSummary("A device's connection history: when, from where, protocol, why it ended").WithTags("Devices");
}
