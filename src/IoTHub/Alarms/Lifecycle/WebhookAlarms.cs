// An endpoint the Webhooks module disabled on its own (410 Gone, or failing for Webhooks:DisableAfter) raises a major
// alarm, so that someone notices that notifications stopped going out; enabling the endpoint again clears it. These
// are the hub's own alarms: no rule, rule id = −(endpoint id), device id empty, metric "webhook". They are announced
// through the outbox like every alarm (to the other endpoints), not on MQTT (no device topic fits).
using IoTHub.Alarms.Rules;
using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Alarms.Lifecycle;

internal sealed class WebhookAlarms(IServiceScopeFactory scopes, Outbox outbox, TimeProvider time, ILogger<WebhookAlarms> log) :
    INotificationHandler<WebhookEndpointDisabled>, INotificationHandler<WebhookEndpointEnabled>
{
    // Its own unit of work: the publisher's context holds the publisher's entities, and a failure here must not undo
    // or break what the publisher did (the endpoint is disabled either way).
    public async ValueTask Handle(WebhookEndpointDisabled n, CancellationToken ct)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            await RaiseAsync(scope.ServiceProvider.GetRequiredService<HubDb>(), n, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            log.LogError(ex, "Could not raise the alarm for disabled webhook endpoint {EndpointId}", n.EndpointId);
        }
    }

    public async ValueTask Handle(WebhookEndpointEnabled n, CancellationToken ct)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            await ClearAsync(scope.ServiceProvider.GetRequiredService<HubDb>(), n, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            log.LogError(ex, "Could not clear the alarm of webhook endpoint {EndpointId}", n.EndpointId);
        }
    }

    /// <summary>The rule id of an endpoint's alarm: below zero, where no rule's id is.</summary>
    public static long RuleIdOf(long endpointId) => -endpointId;

    private static string Name(string url)
    {
        var name = "Webhook endpoint disabled: " + url;
        return name.Length <= 200 ? name : name[..200];
    }

    private async Task RaiseAsync(HubDb db, WebhookEndpointDisabled n, CancellationToken ct)
    {
        var ruleId = RuleIdOf(n.EndpointId);
        if (await db.Set<AlarmRow>().AnyAsync(a => a.RuleId == ruleId && a.DeviceId == "" && a.Closed == 0, ct)) return;
        var at = n.At.ToUnixTimeMilliseconds();
        var row = new AlarmRow
        {
            RuleId = ruleId, RuleName = Name(n.Url), DeviceId = "", Metric = "webhook",
            State = "active", Severity = (int)AlarmSeverity.Major, CreatedAt = at, RaisedAt = at, UpdatedAt = time.NowMs(),
        };
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        db.Add(row);
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException)
        {
            return; // raised by a concurrent notice: the unique index keeps one
        }
        db.Add(new AlarmEventRow { AlarmId = row.Id, At = at, Kind = "raised", Severity = row.Severity, Comment = n.Reason });
        Outbox.Add(db, HubEventTypes.AlarmRaised, AlarmNotice.Of(row, null, HubEventTypes.AlarmRaised), n.At);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        outbox.Committed();
        log.LogWarning("Raised alarm {AlarmId}: webhook endpoint {EndpointId} was disabled ({Reason})", row.Id, n.EndpointId, n.Reason);
    }

    private async Task ClearAsync(HubDb db, WebhookEndpointEnabled n, CancellationToken ct)
    {
        var ruleId = RuleIdOf(n.EndpointId);
        var row = await db.Set<AlarmRow>().FirstOrDefaultAsync(a => a.RuleId == ruleId && a.DeviceId == "" && a.Closed == 0, ct);
        if (row is null) return;
        var at = n.At.ToUnixTimeMilliseconds();
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        row.State = "cleared";
        row.Closed = 1;
        row.ClearedAt = at;
        row.UpdatedAt = time.NowMs();
        db.Add(new AlarmEventRow { AlarmId = row.Id, At = at, Kind = "cleared", Severity = row.Severity, Comment = "the endpoint was enabled again" });
        Outbox.Add(db, HubEventTypes.AlarmCleared, AlarmNotice.Of(row, null, HubEventTypes.AlarmCleared), n.At);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        outbox.Committed();
    }
}
