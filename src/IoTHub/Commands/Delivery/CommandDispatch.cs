// Sends a command to its device exactly once per claim: the row moves queued → sent in one conditional UPDATE
// before the message goes out, so a request thread and a reconnect delivering the same command cannot both send it.
using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Commands.Delivery;

internal sealed class CommandDispatch(HubDb db, IMediator mediator, TimeProvider time, ILogger<CommandDispatch> log)
{
    /// <summary>Claims and sends one queued command. False when another sender claimed it, it expired, or the device is gone.
    /// Not cancellable: a claim cancelled before its send or its revert left the command "sent" and never delivered.</summary>
    public async Task<bool> TrySendAsync(DeviceCommand command)
    {
        var ct = CancellationToken.None;
        var now = time.NowMs();
        var claimed = await db.Set<DeviceCommand>()
            .Where(c => c.Id == command.Id && c.State == CommandState.Queued && (c.ExpiresAt == null || c.ExpiresAt > now))
            .ExecuteUpdateAsync(s => s.SetProperty(c => c.State, CommandState.Sent).SetProperty(c => c.SentAt, now), ct);
        if (claimed == 0) return false;

        var expiresIn = command.ExpiresAt is { } at ? TimeSpan.FromMilliseconds(Math.Max(1000, at - now)) : (TimeSpan?)null;
        bool sent;
        try
        {
            sent = await mediator.Send(new DeliverToDevice(command.DeviceId, "commands/" + command.Id, Payload(command), Retain: false, expiresIn), ct);
        }
        catch (Exception ex)
        {
            log.LogError(ex, "Sending command {CommandId} to device {DeviceId} failed", command.Id, command.DeviceId);
            sent = false;
        }
        if (sent)
        {
            log.LogInformation("Sent command {CommandId} ({Name}) to device {DeviceId}", command.Id, command.Name, command.DeviceId);
            return true;
        }
        // The device went away between the check and the send: back in the queue, or failed when it may not wait.
        var sentRow = db.Set<DeviceCommand>().Where(c => c.Id == command.Id && c.State == CommandState.Sent);
        if (command.DeliverWhenOnline)
            await sentRow.ExecuteUpdateAsync(s => s.SetProperty(c => c.State, CommandState.Queued).SetProperty(c => c.SentAt, (long?)null), ct);
        else
            await sentRow.ExecuteUpdateAsync(s => s.SetProperty(c => c.State, CommandState.Failed).SetProperty(c => c.Error, "device is offline")
                .SetProperty(c => c.CompletedAt, now), ct);
        return false;
    }

    /// <summary>Delivers a device's queued commands, oldest first.</summary>
    public async Task<int> SendQueuedAsync(string deviceId, CancellationToken ct)
    {
        var now = time.NowMs();
        var queued = await db.Set<DeviceCommand>().AsNoTracking()
            .Where(c => c.DeviceId == deviceId && c.State == CommandState.Queued && (c.ExpiresAt == null || c.ExpiresAt > now))
            .OrderBy(c => c.CreatedAt).ThenBy(c => c.Id).ToListAsync(ct);
        var n = 0;
        foreach (var command in queued)
        {
            if (await TrySendAsync(command)) n++;
            else if (!await mediator.Send(new IsDeviceConnected(deviceId), ct)) break; // gone again: keep the order for next time
        }
        return n;
    }

    /// <summary>The message body a device receives: <c>{"name": "...", "params": {...}}</c>.</summary>
    public static byte[] Payload(DeviceCommand command)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(128 + (command.ParamsJson?.Length ?? 0));
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("name", command.Name);
            w.WritePropertyName("params");
            if (command.ParamsJson is null) w.WriteStartObject();
            else w.WriteRawValue(Encoding.UTF8.GetBytes(command.ParamsJson), skipInputValidation: true);
            if (command.ParamsJson is null) w.WriteEndObject();
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }
}

/// <summary>Wakes requests waiting for a command to finish on this hub; they also re-read the row every second,
/// so a response recorded by another hub instance on the same database is seen too.</summary>
internal sealed class CommandSignals
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _waiting = new(StringComparer.Ordinal);

    public Task Changed(string commandId) =>
        _waiting.GetOrAdd(commandId, static _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    public void Signal(string commandId)
    {
        if (_waiting.TryRemove(commandId, out var tcs)) tcs.TrySetResult();
    }
}
