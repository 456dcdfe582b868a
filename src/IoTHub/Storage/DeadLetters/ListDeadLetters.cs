using System.Text;
using IoTHub.Contracts;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Storage.DeadLetters;

/// <summary>
/// A dead letter as the API shows it. <c>payload</c> is the UTF-8 text when the bytes are valid UTF-8, else
/// base64 (<c>payloadEncoding</c> says which); <c>payloadSize</c> is the original size, which may exceed what was kept.
/// </summary>
public sealed record DeadLetterView(long Id, string DeviceId, DateTimeOffset ReceivedAt, string Protocol, string Reason,
    string Payload, string PayloadEncoding, int PayloadSize);

/// <summary>Newest first; the cursor is the last id of the previous page.</summary>
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

/// <summary>A deleted device takes its dead letters with it.</summary>
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

internal sealed class DeleteDeviceDeadLetters(HubDb db) : INotificationHandler<DeviceDeleted>
{
    public async ValueTask Handle(DeviceDeleted n, CancellationToken ct) =>
        await db.Set<DeadLetter>().Where(d => d.DeviceId == n.DeviceId).ExecuteDeleteAsync(ct);
}
