// The device twin's slices: read both sides (GET), set desired (PUT replaces, PATCH merges; If-Match with the
// desired version refuses lost updates with 412), take reported patches from devices, and feed the broker's
// retained store with every desired state when it starts.
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace IoTHub.Commands.State;

/// <summary>A device's twin, or null when the device does not exist.</summary>
public sealed record GetDeviceStateQuery(string DeviceId) : IRequest<DeviceStateView?>;

/// <summary>Changes a device's desired state and publishes it, retained, on <c>devices/{id}/state/desired</c>.</summary>
/// <param name="DeviceId">The device.</param>
/// <param name="Desired">The new desired state (<paramref name="Merge"/> false), or a JSON merge patch onto it (RFC 7386: null removes
/// a member).</param>
/// <param name="Merge">False replaces (HTTP PUT), true merges (HTTP PATCH).</param>
/// <param name="IfMatch">The desired versions the change is meant for (HTTP If-Match may list several, RFC 9110 §13.1.1):
/// when none of them is current nothing changes (<see cref="SetDesiredOutcome.VersionMismatch"/>, HTTP 412; an empty
/// list never matches). Null: no check.</param>
/// <param name="RequestedBy">The user or key that asked, for the record.</param>
public sealed record SetDesiredStateCommand(string DeviceId, JsonObject Desired, bool Merge, IReadOnlyCollection<long>? IfMatch, string? RequestedBy) : IRequest<SetDesiredStateResult>;

/// <summary>How a desired-state change ended; only <see cref="Updated"/> changed anything.</summary>
public enum SetDesiredOutcome
{
    /// <summary>Saved with the next version and sent to the device (HTTP 200 with the new ETag).</summary>
    Updated,
    /// <summary>No device has this id (HTTP 404).</summary>
    DeviceNotFound,
    /// <summary><c>If-Match</c> named an older version (HTTP 412, RFC 9110 §13.1.1); the result carries the current state.</summary>
    VersionMismatch,
    /// <summary>The desired state would exceed <c>Commands:MaxJsonBytes</c> (default 64 KiB; HTTP 413).</summary>
    TooLarge,
}

/// <summary>The outcome of a <see cref="SetDesiredStateCommand"/>, with the twin as it is now when
/// <see cref="SetDesiredOutcome.Updated"/> or <see cref="SetDesiredOutcome.VersionMismatch"/>, else null.</summary>
public sealed record SetDesiredStateResult(SetDesiredOutcome Outcome, DeviceStateView? State);

internal sealed class DeviceStateHandler(HubDb db, IMediator mediator, TimeProvider time, IOptions<CommandsOptions> options, ILogger<DeviceStateHandler> log) :
    IRequestHandler<GetDeviceStateQuery, DeviceStateView?>, IRequestHandler<SetDesiredStateCommand, SetDesiredStateResult>,
    IRequestHandler<ReportDeviceState, StateReportOutcome>, IRequestHandler<GetDesiredStateMessage, byte[]?>,
    IRequestHandler<ListDesiredStateMessages, IReadOnlyList<(string DeviceId, byte[] Payload)>>, INotificationHandler<DeviceDeleted>
{
    // Desired updates on this hub are serialised so the retained messages go out in version order.
    private static readonly SemaphoreSlim DesiredGate = new(1, 1);
    private const int Attempts = 8;

    public async ValueTask<DeviceStateView?> Handle(GetDeviceStateQuery q, CancellationToken ct)
    {
        if (!await mediator.Send(new DeviceExists(q.DeviceId), ct)) return null;
        return DeviceStateView.Of(q.DeviceId, await db.Set<DeviceTwin>().AsNoTracking().FirstOrDefaultAsync(t => t.DeviceId == q.DeviceId, ct));
    }

    public async ValueTask<SetDesiredStateResult> Handle(SetDesiredStateCommand c, CancellationToken ct)
    {
        if (!await mediator.Send(new DeviceExists(c.DeviceId), ct)) return new(SetDesiredOutcome.DeviceNotFound, null);
        await DesiredGate.WaitAsync(ct);
        try
        {
            for (var attempt = 0; attempt < Attempts; attempt++)
            {
                db.ChangeTracker.Clear();
                var twin = await db.Set<DeviceTwin>().AsNoTracking().FirstOrDefaultAsync(t => t.DeviceId == c.DeviceId, ct);
                var current = twin?.DesiredVersion ?? 0;
                if (c.IfMatch is { } expected && !expected.Contains(current)) return new(SetDesiredOutcome.VersionMismatch, DeviceStateView.Of(c.DeviceId, twin));

                var desired = c.Merge ? JsonStates.Parse(twin?.DesiredJson) : new JsonObject();
                JsonStates.MergePatch(desired, c.Desired);
                var json = desired.ToJsonString();
                if (Encoding.UTF8.GetByteCount(json) > options.Value.MaxJsonBytes) return new(SetDesiredOutcome.TooLarge, null);
                var now = time.NowMs();
                var next = current + 1;
                if (!await SaveAsync(twin, c.DeviceId, t => { t.DesiredJson = json; t.DesiredVersion = next; t.DesiredUpdatedAt = now; t.DesiredUpdatedBy = c.RequestedBy; },
                        q => q.Where(t => t.DesiredVersion == current).ExecuteUpdateAsync(s => s.SetProperty(t => t.DesiredJson, json)
                            .SetProperty(t => t.DesiredVersion, next).SetProperty(t => t.DesiredUpdatedAt, now).SetProperty(t => t.DesiredUpdatedBy, c.RequestedBy), ct), ct))
                    continue; // another hub changed it in between: read again (and let If-Match decide)

                // Committed: the retained copy follows whatever happens to the request (an abort here left the broker
                // retaining the previous version until the next start).
                await mediator.Send(new DeliverToDevice(c.DeviceId, "state/desired", DesiredMessage(next, desired), Retain: true), CancellationToken.None);
                log.LogInformation("Desired state of device {DeviceId} is now version {Version}", c.DeviceId, next);
                return new(SetDesiredOutcome.Updated, DeviceStateView.Of(c.DeviceId, await db.Set<DeviceTwin>().AsNoTracking().FirstAsync(t => t.DeviceId == c.DeviceId, ct)));
            }
            throw new DbUpdateConcurrencyException($"desired state of {c.DeviceId} kept changing");
        }
        finally
        {
            DesiredGate.Release();
        }
    }

    public async ValueTask<StateReportOutcome> Handle(ReportDeviceState r, CancellationToken ct)
    {
        var max = options.Value.MaxJsonBytes;
        if (JsonStates.ParseFromDevice(r.Payload, max, "reported state", out var error) is not { } patch) return new(null, error);
        for (var attempt = 0; attempt < Attempts; attempt++)
        {
            db.ChangeTracker.Clear();
            var twin = await db.Set<DeviceTwin>().AsNoTracking().FirstOrDefaultAsync(t => t.DeviceId == r.DeviceId, ct);
            var current = twin?.ReportedVersion ?? 0;
            var reported = JsonStates.Parse(twin?.ReportedJson);
            JsonStates.MergePatch(reported, patch);
            var json = reported.ToJsonString();
            if (Encoding.UTF8.GetByteCount(json) > max) return new(null, $"reported state would grow beyond {max} bytes");
            var now = time.NowMs();
            var next = current + 1;
            if (await SaveAsync(twin, r.DeviceId, t => { t.ReportedJson = json; t.ReportedVersion = next; t.ReportedUpdatedAt = now; },
                    q => q.Where(t => t.ReportedVersion == current).ExecuteUpdateAsync(s => s.SetProperty(t => t.ReportedJson, json)
                        .SetProperty(t => t.ReportedVersion, next).SetProperty(t => t.ReportedUpdatedAt, now), ct), ct))
            {
                // The Firmware module judges updates by the version a device reports after it reconnected.
                if (Text(patch, "firmwareVersion") is var version && Text(patch, "hardwareModel") is var model && (version is not null || model is not null))
                    await mediator.Publish(new DeviceFirmwareReported(r.DeviceId, version, model, DateTimeOffset.FromUnixTimeMilliseconds(now)), ct);
                return new(next, null);
            }
        }
        throw new DbUpdateConcurrencyException($"reported state of {r.DeviceId} kept changing");
    }

    private static string? Text(JsonObject patch, string key) => patch[key] is JsonValue v && v.TryGetValue<string>(out var text) ? text : null;

    /// <summary>Inserts the twin when there is none, else runs the version-conditional update. False when a concurrent writer won.</summary>
    private async Task<bool> SaveAsync(DeviceTwin? existing, string deviceId, Action<DeviceTwin> fill,
        Func<IQueryable<DeviceTwin>, Task<int>> conditionalUpdate, CancellationToken ct)
    {
        if (existing is not null) return await conditionalUpdate(db.Set<DeviceTwin>().Where(t => t.DeviceId == deviceId)) == 1;
        var twin = new DeviceTwin { DeviceId = deviceId };
        fill(twin);
        db.Add(twin);
        try
        {
            await db.SaveChangesAsync(ct);
            return true;
        }
        catch (DbUpdateException)
        {
            return false;
        }
    }

    public async ValueTask<byte[]?> Handle(GetDesiredStateMessage q, CancellationToken ct)
    {
        var twin = await db.Set<DeviceTwin>().AsNoTracking().FirstOrDefaultAsync(t => t.DeviceId == q.DeviceId && t.DesiredVersion > 0, ct);
        return twin is null ? null : DesiredMessage(twin.DesiredVersion, JsonStates.Parse(twin.DesiredJson));
    }

    public async ValueTask<IReadOnlyList<(string DeviceId, byte[] Payload)>> Handle(ListDesiredStateMessages q, CancellationToken ct)
    {
        var twins = await db.Set<DeviceTwin>().AsNoTracking().Where(t => t.DesiredVersion > 0)
            .Select(t => new { t.DeviceId, t.DesiredVersion, t.DesiredJson }).ToListAsync(ct);
        return twins.Select(t => (t.DeviceId, DesiredMessage(t.DesiredVersion, JsonStates.Parse(t.DesiredJson)))).ToList();
    }

    public async ValueTask Handle(DeviceDeleted n, CancellationToken ct)
    {
        if (await db.Set<DeviceTwin>().Where(t => t.DeviceId == n.DeviceId).ExecuteDeleteAsync(ct) > 0)
            await mediator.Send(new DeliverToDevice(n.DeviceId, "state/desired", ReadOnlyMemory<byte>.Empty, Retain: true), CancellationToken.None); // clears the retained message (after the commit, whatever the caller does)
    }

    /// <summary><c>{"version": n, "state": {...}}</c>, what a device receives on <c>devices/{id}/state/desired</c>.</summary>
    internal static byte[] DesiredMessage(long version, JsonObject state) =>
        JsonSerializer.SerializeToUtf8Bytes(new JsonObject { ["version"] = version, ["state"] = state.DeepClone() });

    public static void Map(RouteGroupBuilder api)
    {
        api.MapGet("/devices/{id}/state", async Task<Results<Ok<DeviceStateView>, NotFoundProblem>> (string id, HttpContext http, IMediator m, CancellationToken ct) =>
            {
                if (await m.Send(new GetDeviceStateQuery(id), ct) is not { } view) return new NotFoundProblem($"Device '{id}' not found");
                http.Response.Headers.ETag = $"\"{view.Desired.Version}\"";
                return TypedResults.Ok(view);
            })
            .WithName("GetDeviceState").WithSummary("Desired and reported state with their versions, and the delta").WithTags("Device state");

        api.MapPut("/devices/{id}/state", (string id, JsonObject body, HttpContext http, IMediator m, CancellationToken ct) => SetAsync(id, body, merge: false, http, m, ct))
            .RequireAuthorization("operator")
            .WithName("SetDesiredState").WithTags("Device state")
            .WithSummary("Replace the desired state ({\"desired\": {...}}); If-Match with the desired version refuses lost updates");

        api.MapPatch("/devices/{id}/state", (string id, JsonObject body, HttpContext http, IMediator m, CancellationToken ct) => SetAsync(id, body, merge: true, http, m, ct))
            .RequireAuthorization("operator")
            .WithName("PatchDesiredState").WithTags("Device state")
            .WithSummary("Merge a JSON merge patch into the desired state ({\"desired\": {...}}); null removes a member");
    }

    private static async Task<Results<Ok<DeviceStateView>, ValidationProblem, NotFoundProblem, PreconditionFailedProblem, ContentTooLargeProblem>> SetAsync(
        string id, JsonObject body, bool merge, HttpContext http, IMediator m, CancellationToken ct)
    {
        if (body["desired"] is not JsonObject desired)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["desired"] = ["desired must be a JSON object"] });
        // If-Match (RFC 9110 §13.1.1): "*" or a list of entity tags, compared strongly, so a weak tag (W/"3") never
        // matches; the change is made when one of them is the current version.
        List<long>? ifMatch = null;
        var header = http.Request.Headers.IfMatch;
        if (header.Count > 0 && !(header.Count == 1 && header[0]?.Trim() == "*"))
        {
            var valid = Microsoft.Net.Http.Headers.EntityTagHeaderValue.TryParseStrictList(header, out var tags) && tags.Count > 0;
            ifMatch = [];
            foreach (var tag in valid ? tags! : [])
            {
                valid = long.TryParse(tag.Tag.AsSpan().Trim('"'), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var version);
                if (!valid) break;
                if (!tag.IsWeak) ifMatch.Add(version);
            }
            if (!valid)
                return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["If-Match"] = ["If-Match must be the desired version as an entity tag, e.g. \"3\" (or a list of them, or *)"] });
        }
        var result = await m.Send(new SetDesiredStateCommand(id, desired, merge, ifMatch, http.User.Identity?.Name), ct);
        switch (result.Outcome)
        {
            case SetDesiredOutcome.DeviceNotFound:
                return new NotFoundProblem($"Device '{id}' not found");
            case SetDesiredOutcome.TooLarge:
                return new ContentTooLargeProblem("Desired state too large");
            case SetDesiredOutcome.VersionMismatch:
                http.Response.Headers.ETag = $"\"{result.State!.Desired.Version}\"";
                return new PreconditionFailedProblem("Desired state has changed",
                    $"If-Match was {http.Request.Headers.IfMatch} (compared strongly: a weak tag never matches), the desired version is now {result.State.Desired.Version}. Read it again and retry.");
            default:
                http.Response.Headers.ETag = $"\"{result.State!.Desired.Version}\"";
                return TypedResults.Ok(result.State);
        }
    }
}
