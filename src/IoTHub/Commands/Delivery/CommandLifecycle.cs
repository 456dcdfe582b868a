// What devices and the broker tell the Commands module: ready to receive (deliver the queue), acknowledged
// (delivered), answered (succeeded or failed), gone (requeue what the broker will not redeliver), deleted.
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using IoTHub.Commands.State;
using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace IoTHub.Commands.Delivery;

internal sealed class CommandLifecycle(
    HubDb db, CommandDispatch dispatch, CommandSignals signals, TimeProvider time, IOptions<CommandsOptions> options, ILogger<CommandLifecycle> log) :
    INotificationHandler<DeviceReadyForCommands>, INotificationHandler<CommandDelivered>, INotificationHandler<DeviceDisconnected>,
    INotificationHandler<DeviceDeleted>, IRequestHandler<RecordCommandResponse, string?>
{
    public async ValueTask Handle(DeviceReadyForCommands n, CancellationToken ct)
    {
        var sent = await dispatch.SendQueuedAsync(n.DeviceId, ct);
        if (sent > 0) log.LogInformation("Delivered {Count} queued commands to device {DeviceId}", sent, n.DeviceId);
    }

    public async ValueTask Handle(CommandDelivered n, CancellationToken ct)
    {
        var now = time.NowMs();
        var changed = await db.Set<DeviceCommand>().Where(c => c.Id == n.CommandId && c.DeviceId == n.DeviceId && c.State == CommandState.Sent)
            .ExecuteUpdateAsync(s => s.SetProperty(c => c.State, CommandState.Delivered).SetProperty(c => c.DeliveredAt, now), ct);
        if (changed > 0) signals.Signal(n.CommandId);
    }

    public async ValueTask Handle(DeviceDisconnected n, CancellationToken ct)
    {
        if (n.SessionKept) return; // the broker redelivers from the session when the device returns
        var requeued = await db.Set<DeviceCommand>().Where(c => c.DeviceId == n.DeviceId && c.State == CommandState.Sent && c.DeliverWhenOnline)
            .ExecuteUpdateAsync(s => s.SetProperty(c => c.State, CommandState.Queued).SetProperty(c => c.SentAt, (long?)null), ct);
        if (requeued > 0) log.LogInformation("Device {DeviceId} left before acknowledging {Count} commands; they are queued again", n.DeviceId, requeued);
    }

    public async ValueTask Handle(DeviceDeleted n, CancellationToken ct) =>
        await db.Set<DeviceCommand>().Where(c => c.DeviceId == n.DeviceId).ExecuteDeleteAsync(ct);

    public async ValueTask<string?> Handle(RecordCommandResponse r, CancellationToken ct)
    {
        if (JsonStates.ParseFromDevice(r.Payload, options.Value.MaxJsonBytes, "response", out var error) is not { } body) return error;
        var status = body["status"] is JsonValue v && v.TryGetValue<string>(out var text) ? text : "";
        if (status is not ("ok" or "error")) return "response status must be \"ok\" or \"error\"";
        var result = body["result"]?.ToJsonString();
        var now = time.NowMs();
        var state = status == "ok" ? CommandState.Succeeded : CommandState.Failed;
        var changed = await db.Set<DeviceCommand>()
            .Where(c => c.Id == r.CommandId && c.DeviceId == r.DeviceId && c.State != CommandState.Succeeded && c.State != CommandState.Failed)
            .ExecuteUpdateAsync(s => s.SetProperty(c => c.State, state).SetProperty(c => c.ResponseStatus, status).SetProperty(c => c.ResultJson, result)
                .SetProperty(c => c.CompletedAt, now).SetProperty(c => c.DeliveredAt, c => c.DeliveredAt ?? now).SetProperty(c => c.Error, (string?)null), ct);
        if (changed == 0)
        {
            var known = await db.Set<DeviceCommand>().AnyAsync(c => c.Id == r.CommandId && c.DeviceId == r.DeviceId, ct);
            return known ? null : $"no command {r.CommandId} for this device"; // a repeated response is acknowledged, not an error
        }
        signals.Signal(r.CommandId);
        log.LogInformation("Device {DeviceId} answered command {CommandId}: {Status}", r.DeviceId, r.CommandId, status);
        return null;
    }
}

/// <summary>Marks queued commands past their expiry as expired. At start, commands sent but never acknowledged
/// are queued again: the broker's sessions did not survive the restart, so nobody else will redeliver them.</summary>
internal sealed class CommandExpiry(IServiceScopeFactory scopes, TimeProvider time, IOptions<CommandsOptions> options, ILogger<CommandExpiry> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await RunAsync(requeueSent: true, stoppingToken);
        using var timer = new PeriodicTimer(options.Value.ExpiryCheckInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
            await RunAsync(requeueSent: false, stoppingToken);
    }

    private async Task RunAsync(bool requeueSent, CancellationToken ct)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<HubDb>();
            if (requeueSent)
            {
                await db.Set<DeviceCommand>().Where(c => c.State == CommandState.Sent && c.DeliverWhenOnline)
                    .ExecuteUpdateAsync(s => s.SetProperty(c => c.State, CommandState.Queued).SetProperty(c => c.SentAt, (long?)null), ct);
            }
            var now = time.NowMs();
            var expired = await db.Set<DeviceCommand>()
                .Where(c => (c.State == CommandState.Queued || c.State == CommandState.Sent) && c.ExpiresAt != null && c.ExpiresAt <= now)
                .ExecuteUpdateAsync(s => s.SetProperty(c => c.State, CommandState.Expired).SetProperty(c => c.Error, "expired before the device received it")
                    .SetProperty(c => c.CompletedAt, now), ct);
            if (expired > 0) log.LogInformation("{Count} queued commands expired undelivered", expired);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            log.LogWarning(ex, "Checking command expiry failed; will retry");
        }
    }
}
