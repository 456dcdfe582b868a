// POST /devices/{id}/commands: record the command, send it if the device can receive it, and wait for the
// device's response up to the timeout. An Idempotency-Key makes retries safe: the same key on the same device
// returns the first command's outcome and never sends it twice.
using System.Security.Claims;
using System.Text;
using System.Text.Json.Nodes;
using FluentValidation;
using IoTHub.Commands.Delivery;
using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace IoTHub.Commands.SendCommand;

/// <summary>The body of <c>POST /api/v1/devices/{id}/commands</c> (CONTRACT.md, "App / admin REST API"): what to send and
/// how long to wait for the answer. Invalid fields answer 400 with problem+json naming each.</summary>
/// <param name="Name">The command name, required, an identifier (e.g. <c>reboot</c>).</param>
/// <param name="Params">A JSON object sent to the device with the name, at most <c>Commands:MaxJsonBytes</c> (default 64 KiB);
/// absent or null: <c>{}</c>.</param>
/// <param name="TimeoutSeconds">How long the request waits for the device's response, 1 to <c>Commands:MaxTimeoutSeconds</c>
/// (default 300); absent: <c>Commands:DefaultTimeoutSeconds</c> (30). With no response in time: 504, or 202 while a
/// <paramref name="DeliverWhenOnline"/> command still waits.</param>
/// <param name="DeliverWhenOnline">True: a device that is offline gets the command when it next subscribes to its commands;
/// false (default): an offline device answers 409.</param>
/// <param name="ExpiresInSeconds">With <paramref name="DeliverWhenOnline"/> only: how long the queued command waits for its device,
/// 1 to <c>Commands:MaxExpirySeconds</c> (30 days); absent: <c>Commands:DefaultExpirySeconds</c> (1 day).</param>
public sealed record SendCommandBody(string? Name, JsonNode? Params, int? TimeoutSeconds, bool? DeliverWhenOnline, int? ExpiresInSeconds);

/// <summary>A command to send: the body, the caller's <c>Idempotency-Key</c> header (at most 200 printable characters) and who asked.</summary>
internal sealed record SendCommandRequest(string DeviceId, SendCommandBody Body, string? IdempotencyKey, string? RequestedBy) : IRequest<SendCommandResult>;

/// <summary>How sending a command ended, each with its HTTP answer.</summary>
internal enum SendCommandOutcome
{
    /// <summary>404: no device has this id.</summary>
    DeviceNotFound,
    /// <summary>200: the command is final (succeeded or failed with the device's response).</summary>
    Finished,
    /// <summary>202: a <c>deliverWhenOnline</c> command still waits for its device or its response.</summary>
    StillPending,
    /// <summary>504: no response before the timeout; the command expired.</summary>
    TimedOut,
    /// <summary>409: the device is not connected (or not subscribed to its commands) and the command may not wait.</summary>
    DeviceOffline,
    /// <summary>422: the <c>Idempotency-Key</c> was first used for a command with another name or params.</summary>
    KeyReused,
}

/// <summary>The outcome of a <see cref="SendCommandRequest"/> with the command as it is now (null for <see cref="SendCommandOutcome.DeviceNotFound"/>).</summary>
internal sealed record SendCommandResult(SendCommandOutcome Outcome, CommandView? Command);

internal sealed class SendCommandBodyValidator : AbstractValidator<SendCommandBody>
{
    public SendCommandBodyValidator(IOptions<CommandsOptions> options)
    {
        var o = options.Value;
        RuleFor(x => x.Name).NotEmpty().WithMessage("name is required")
            .Must(n => n is null || Identifier.IsValid(n)).WithMessage($"name must be {Identifier.Rule}");
        RuleFor(x => x.Params).Must(p => p is null or JsonObject).WithMessage("params must be a JSON object")
            .Must(p => p is null || Encoding.UTF8.GetByteCount(p.ToJsonString()) <= o.MaxJsonBytes).WithMessage($"params must be at most {o.MaxJsonBytes} bytes");
        RuleFor(x => x.TimeoutSeconds).InclusiveBetween(1, o.MaxTimeoutSeconds).When(x => x.TimeoutSeconds is not null);
        RuleFor(x => x.ExpiresInSeconds).InclusiveBetween(1, o.MaxExpirySeconds).When(x => x.ExpiresInSeconds is not null);
        RuleFor(x => x.ExpiresInSeconds).Null().When(x => x.DeliverWhenOnline != true)
            .WithMessage("expiresInSeconds applies only with deliverWhenOnline: true");
    }
}

internal sealed class SendCommandHandler(
    HubDb db, IMediator mediator, CommandDispatch dispatch, CommandSignals signals, TimeProvider time, IOptions<CommandsOptions> options)
    : IRequestHandler<SendCommandRequest, SendCommandResult>
{
    public async ValueTask<SendCommandResult> Handle(SendCommandRequest r, CancellationToken ct)
    {
        if (!await mediator.Send(new DeviceExists(r.DeviceId), ct)) return new(SendCommandOutcome.DeviceNotFound, null);
        var o = options.Value;
        var b = r.Body;
        var waitUntil = time.NowMs() + (b.TimeoutSeconds ?? o.DefaultTimeoutSeconds) * 1000L;
        var paramsJson = b.Params?.ToJsonString();

        var command = r.IdempotencyKey is null ? null : await FindByKeyAsync(r.DeviceId, r.IdempotencyKey, ct);
        if (command is null)
        {
            var now = time.NowMs();
            command = new DeviceCommand
            {
                Id = Guid.CreateVersion7().ToString("N"), DeviceId = r.DeviceId, Name = b.Name!, ParamsJson = paramsJson,
                IdempotencyKey = r.IdempotencyKey, DeliverWhenOnline = b.DeliverWhenOnline == true, CreatedAt = now,
                ExpiresAt = b.DeliverWhenOnline == true ? now + (b.ExpiresInSeconds ?? o.DefaultExpirySeconds) * 1000L : null,
                RequestedBy = r.RequestedBy,
            };
            db.Add(command);
            try
            {
                await db.SaveChangesAsync(ct);
            }
            catch (DbUpdateException) when (r.IdempotencyKey is not null)
            {
                // A concurrent retry with the same key won the insert: follow its command instead.
                db.ChangeTracker.Clear();
                command = await FindByKeyAsync(r.DeviceId, r.IdempotencyKey, ct) ?? throw new InvalidOperationException("idempotency key vanished");
                return await FollowAsync(command, b, paramsJson, waitUntil, ct);
            }
            db.ChangeTracker.Clear();
            // From the insert on, the request's abort no longer stops anything: an immediate command left queued
            // would have gone out at the device's next connect, long after the caller gave up on it.
            if (await mediator.Send(new IsDeviceConnected(r.DeviceId), CancellationToken.None)) await dispatch.TrySendAsync(command);
            else if (command.DeliverWhenOnline) return new(SendCommandOutcome.StillPending, CommandView.Of(command)); // queued until it connects
            else
            {
                await db.Set<DeviceCommand>().Where(c => c.Id == command.Id && c.State == CommandState.Queued)
                    .ExecuteUpdateAsync(s => s.SetProperty(c => c.State, CommandState.Failed).SetProperty(c => c.Error, "device is offline")
                        .SetProperty(c => c.CompletedAt, now), CancellationToken.None);
            }
            return await WaitAsync(command.Id, waitUntil, ct);
        }
        return await FollowAsync(command, b, paramsJson, waitUntil, ct);
    }

    private async Task<SendCommandResult> FollowAsync(DeviceCommand existing, SendCommandBody b, string? paramsJson, long waitUntil, CancellationToken ct)
    {
        var same = existing.Name == b.Name && existing.DeliverWhenOnline == (b.DeliverWhenOnline == true)
            && JsonNode.DeepEquals(JsonNode.Parse(existing.ParamsJson ?? "{}"), JsonNode.Parse(paramsJson ?? "{}")); // none is {}, as sent
        if (!same) return new(SendCommandOutcome.KeyReused, CommandView.Of(existing));
        return await WaitAsync(existing.Id, waitUntil, ct);
    }

    private Task<DeviceCommand?> FindByKeyAsync(string deviceId, string key, CancellationToken ct) =>
        db.Set<DeviceCommand>().AsNoTracking().FirstOrDefaultAsync(c => c.DeviceId == deviceId && c.IdempotencyKey == key, ct);

    /// <summary>Waits until the command is final or the deadline passes; a command that may not wait for its device then expires.</summary>
    private async Task<SendCommandResult> WaitAsync(string id, long waitUntil, CancellationToken ct)
    {
        while (true)
        {
            var changed = signals.Changed(id);
            var command = await db.Set<DeviceCommand>().AsNoTracking().FirstAsync(c => c.Id == id, ct);
            if (CommandState.IsFinal(command.State))
            {
                var offline = command.State == CommandState.Failed && command.ResponseStatus is null;
                return new(offline ? SendCommandOutcome.DeviceOffline : command.State == CommandState.Expired ? SendCommandOutcome.TimedOut : SendCommandOutcome.Finished,
                    CommandView.Of(command));
            }
            var left = waitUntil - time.NowMs();
            if (left <= 0)
            {
                signals.Signal(id); // let other waiters re-register rather than hold a stale entry
                if (command.DeliverWhenOnline) return new(SendCommandOutcome.StillPending, CommandView.Of(command));
                var now = time.NowMs();
                await db.Set<DeviceCommand>().Where(c => c.Id == id && (c.State == CommandState.Queued || c.State == CommandState.Sent || c.State == CommandState.Delivered))
                    .ExecuteUpdateAsync(s => s.SetProperty(c => c.State, CommandState.Expired)
                        .SetProperty(c => c.Error, "no response before the timeout").SetProperty(c => c.CompletedAt, now), ct);
                continue; // re-read: a response may have beaten the update
            }
            await Task.WhenAny(changed, Task.Delay(TimeSpan.FromMilliseconds(Math.Min(left, 1000)), ct));
            ct.ThrowIfCancellationRequested();
        }
    }

    public static void Map(RouteGroupBuilder api) =>
        api.MapPost("/devices/{id}/commands", async (string id, SendCommandBody body, HttpContext http, IValidator<SendCommandBody> validator,
                IMediator m, CancellationToken ct) =>
            {
                var key = http.Request.Headers["Idempotency-Key"].ToString();
                if (key.Length > 200 || key.Any(char.IsControl))
                    return Results.ValidationProblem(new Dictionary<string, string[]> { ["Idempotency-Key"] = ["at most 200 printable characters"] });
                var v = await validator.ValidateAsync(body, ct);
                if (!v.IsValid) return Results.ValidationProblem(v.ToDictionary());
                var result = await m.Send(new SendCommandRequest(id, body, key.Length == 0 ? null : key, http.User.Identity?.Name), ct);
                var c = result.Command;
                return result.Outcome switch
                {
                    SendCommandOutcome.DeviceNotFound => Results.Problem(statusCode: 404, title: $"Device '{id}' not found"),
                    SendCommandOutcome.KeyReused => Results.Problem(statusCode: 422, title: "Idempotency-Key reused",
                        detail: $"The key was first used for command {c!.Id} with a different name or params."),
                    SendCommandOutcome.DeviceOffline => Results.Problem(statusCode: 409, title: "Device is offline",
                        detail: "The device is not connected (or not subscribed to its commands). Send with \"deliverWhenOnline\": true to queue it.",
                        extensions: new Dictionary<string, object?> { ["command"] = c }),
                    SendCommandOutcome.TimedOut => Results.Problem(statusCode: 504, title: "The device did not respond in time",
                        detail: $"Command {c!.Id} is {c.State}.", extensions: new Dictionary<string, object?> { ["command"] = c }),
                    SendCommandOutcome.StillPending => Results.Accepted($"/api/v1/devices/{id}/commands/{c!.Id}", c),
                    _ => Results.Ok(c),
                };
            })
            .RequireAuthorization("operator")
            .WithName("SendCommand").WithTags("Commands")
            .WithSummary("Send a command and wait for the device's response (Idempotency-Key makes retries safe)")
            .WithDescription("200 with the command and the device's response; 202 while a deliverWhenOnline command waits for its device; " +
                "409 when the device is offline; 504 when it did not answer within timeoutSeconds; 422 when an Idempotency-Key is reused for a different command.")
            // Kept by hand: seven kinds of response are one more than Results<...> can name, and the 409 and 504 problems carry
            // the command as an extension member, which the typed problem results of Contracts do not.
            .Produces<CommandView>().Produces<CommandView>(202).ProducesValidationProblem().ProducesProblem(404).ProducesProblem(409)
            .ProducesProblem(422).ProducesProblem(504);
}
