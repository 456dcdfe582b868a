// A firmware campaign that halts itself raises a major alarm, so that someone looks before the next wave; resuming,
// aborting or deleting the campaign clears it. Like the webhook alarms these are the hub's own: no rule, device id
// empty, metric "firmware", rule id −(2^40 + campaign id), a range no webhook endpoint's −id reaches.
using IoTHub.Alarms.Rules;
using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Alarms.Lifecycle;

internal sealed class FirmwareAlarms(IServiceScopeFactory scopes, Outbox outbox, TimeProvider time, ILogger<FirmwareAlarms> log) :
    INotificationHandler<FirmwareCampaignHalted>, INotificationHandler<FirmwareCampaignResolved>
{
    /// <summary>The rule id of a campaign's alarm: below zero and below every webhook endpoint's.</summary>
    public static long RuleIdOf(long campaignId) => -((1L << 40) + campaignId);

    public async ValueTask Handle(FirmwareCampaignHalted n, CancellationToken ct)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<HubDb>();
            var ruleId = RuleIdOf(n.CampaignId);
            if (await db.Set<AlarmRow>().AnyAsync(a => a.RuleId == ruleId && a.DeviceId == "" && a.Closed == 0, ct)) return;
            var at = n.At.ToUnixTimeMilliseconds();
            var name = SafeText.Prefix($"Firmware campaign halted: {n.Name}", 200);
            var row = new AlarmRow
            {
                RuleId = ruleId, RuleName = name, DeviceId = "", Metric = "firmware",
                State = "active", Severity = (int)AlarmSeverity.Major, CreatedAt = at, RaisedAt = at, UpdatedAt = time.NowMs(),
            };
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            db.Add(row);
            try { await db.SaveChangesAsync(ct); }
            catch (DbUpdateException) { return; } // raised by a concurrent notice: the unique index keeps one
            db.Add(new AlarmEventRow { AlarmId = row.Id, At = at, Kind = "raised", Severity = row.Severity, Comment = SafeText.Prefix(n.Reason, 1000) });
            Outbox.Add(db, HubEventTypes.AlarmRaised, AlarmNotice.Of(row, null, HubEventTypes.AlarmRaised), n.At);
            await db.SaveChangesAsync(ct);
            await tx.CommitAsync(ct);
            outbox.Committed();
            log.LogWarning("Raised alarm {AlarmId}: firmware campaign {CampaignId} halted ({Reason})", row.Id, n.CampaignId, n.Reason);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            log.LogError(ex, "Could not raise the alarm for halted firmware campaign {CampaignId}", n.CampaignId);
        }
    }

    public async ValueTask Handle(FirmwareCampaignResolved n, CancellationToken ct)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<HubDb>();
            var ruleId = RuleIdOf(n.CampaignId);
            var row = await db.Set<AlarmRow>().FirstOrDefaultAsync(a => a.RuleId == ruleId && a.DeviceId == "" && a.Closed == 0, ct);
            if (row is null) return;
            var at = n.At.ToUnixTimeMilliseconds();
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            row.State = "cleared";
            row.Closed = 1;
            row.ClearedAt = at;
            row.UpdatedAt = time.NowMs();
            db.Add(new AlarmEventRow { AlarmId = row.Id, At = at, Kind = "cleared", Severity = row.Severity, Comment = SafeText.Prefix("the campaign was " + n.How, 1000) });
            Outbox.Add(db, HubEventTypes.AlarmCleared, AlarmNotice.Of(row, null, HubEventTypes.AlarmCleared), n.At);
            await db.SaveChangesAsync(ct);
            await tx.CommitAsync(ct);
            outbox.Committed();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            log.LogError(ex, "Could not clear the alarm of firmware campaign {CampaignId}", n.CampaignId);
        }
    }
}
