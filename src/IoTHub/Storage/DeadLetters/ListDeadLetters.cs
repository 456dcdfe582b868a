using System.Text;
using IoTHub.Contracts;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Storage.DeadLetters;

/// <summary>A rejected message as <c>GET /api/v1/dead-letters</c> shows it (CONTRACT.md).</summary>
/// <param name="Id">The dead letter's id, increasing; the cursor of the next page.</param>
/// <param name="DeviceId">The device that sent it.</param>
/// <param name="ReceivedAt">When the hub received it (ISO 8601 UTC).</param>
/// <param name="Protocol"><c>mqtt</c> or <c>http</c>.</param>
/// <param name="Reason">Why it was rejected, e.g. <c>values.temperature: expected a number</c>.</param>
/// <param name="Payload">The bytes as received, cut to <c>Storage:DeadLetterPayloadLimit</c> (default 16 KiB): UTF-8 text
/// when they are valid UTF-8, else base64.</param>
/// <param name="PayloadEncoding"><c>utf-8</c> or <c>base64</c>: how to read <paramref name="Payload"/>.</param>
/// <param name="PayloadSize">The original size in bytes, which may exceed what was kept.</param>
public sealed record DeadLetterView(long Id, string DeviceId, DateTimeOffset ReceivedAt, string Protocol, string Reason,
    string Payload, string PayloadEncoding, int PayloadSize);

/// <summary>A page of dead letters, newest first: <c>GET /api/v1/dead-letters?deviceId=&amp;from=&amp;to=&amp;reason=&amp;cursor=&amp;limit=</c>.</summary>
/// <param name="DeviceId">Only this device's.</param>
/// <param name="From">Only those received at or after this time.</param>
/// <param name="To">Only those received before this time.</param>
/// <param name="Reason">Only those whose reason contains this text.</param>
/// <param name="Cursor">The <c>next</c> of the previous page: dead letters with a smaller id.</param>
/// <param name="Limit">Dead letters per page (the endpoint allows 1-1000, default 100).</param>
public sealed record ListDeadLettersQuery(string? DeviceId, DateTimeOffset? From, DateTimeOffset? To, string? Reason, long? Cursor, int Limit)
    : IRequest<Page<DeadLetterView>>;

internal sealed class ListDeadLettersHandler(HubDb db) : IRequestHandler<ListDeadLettersQuery, Page<DeadLetterView>>
{
    private static readonly UTF8Encoding StrictUtf8 = new(false, true);

    public async ValueTask<Page<DeadLetterView>> Handle(ListDeadLettersQuery q, CancellationToken ct)
    {
        var rows = db.Set<DeadLetter>().AsNoTracking().AsQueryable();
        if (!string.IsNullOrEmpty(q.DeviceId)) rows = rows.Where(d => d.DeviceId == q.DeviceId);
        if (q.From is { } from) { var f = from.ToUnixTimeMilliseconds(); rows = rows.Where(d => d.ReceivedAt >= f); }
        if (q.To is { } to) { var t = to.ToUnixTimeMilliseconds(); rows = rows.Where(d => d.ReceivedAt < t); }
        if (!string.IsNullOrEmpty(q.Reason)) rows = rows.Where(d => d.Reason.Contains(q.Reason));
        if (q.Cursor is { } c) rows = rows.Where(d => d.Id < c);
        var page = await rows.OrderByDescending(d => d.Id).Take(q.Limit + 1).ToListAsync(ct);
        var items = page.Take(q.Limit).Select(View).ToList();
        return new Page<DeadLetterView>(items, page.Count > q.Limit ? items[^1].Id.ToString(System.Globalization.CultureInfo.InvariantCulture) : null);
    }

    private static DeadLetterView View(DeadLetter d)
    {
        string payload, encoding;
        try
        {
            payload = StrictUtf8.GetString(d.Payload);
            encoding = "utf-8";
        }
        catch (DecoderFallbackException)
        {
            payload = Convert.ToBase64String(d.Payload);
            encoding = "base64";
        }
        return new DeadLetterView(d.Id, d.DeviceId, UnixTime.ToDateTime(d.ReceivedAt), d.Protocol, d.Reason, payload, encoding, d.PayloadSize);
    }

    public static void Map(RouteGroupBuilder api) =>
        api.MapGet("/dead-letters", async Task<Results<Ok<Page<DeadLetterView>>, ValidationProblem>> (string? deviceId, DateTimeOffset? from,
                DateTimeOffset? to, string? reason, long? cursor, int? limit, IMediator m, CancellationToken ct) =>
            {
                if (PageLimit.Check(limit, 100, 1000, out var n) is { } badLimit) return badLimit;
                return TypedResults.Ok(await m.Send(new ListDeadLettersQuery(deviceId, from, to, reason, cursor, n), ct));
            })
            .WithName("ListDeadLetters").WithSummary("Rejected messages with their reasons, newest first").WithTags("Telemetry");
}

/// <summary>Counts dead letters received since a time, of all devices or one (the overview's figure).</summary>
internal sealed class CountDeadLettersHandler(HubDb db) : IRequestHandler<CountDeadLettersQuery, long>
{
    public async ValueTask<long> Handle(CountDeadLettersQuery q, CancellationToken ct)
    {
        var since = q.Since.ToUnixTimeMilliseconds();
        var rows = db.Set<DeadLetter>().AsNoTracking().Where(d => d.ReceivedAt >= since);
        if (q.DeviceId is not null) rows = rows.Where(d => d.DeviceId == q.DeviceId);
        return await rows.LongCountAsync(ct);
    }
}

/// <summary>A deleted device takes its dead letters with it.</summary>
internal sealed class DeleteDeviceDeadLetters(HubDb db) : INotificationHandler<DeviceDeleted>
{
    public async ValueTask Handle(DeviceDeleted n, CancellationToken ct) =>
        await db.Set<DeadLetter>().Where(d => d.DeviceId == n.DeviceId).ExecuteDeleteAsync(ct);
}
