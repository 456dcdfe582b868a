using FluentValidation;
using IoTHub.Contracts;
using IoTHub.Devices.GetDevice;
using IoTHub.Devices.Presence;
using IoTHub.Storage;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Devices.UpdateDevice;

/// <summary>The body of <c>PATCH /api/v1/devices/{id}</c>, a partial update: absent (null) fields are left as they are.</summary>
/// <param name="Name">A new label, at most 200 characters.</param>
/// <param name="Profile">A profile id to assign (unknown: 400 naming <c>profile</c>), or <c>""</c> to remove the profile.</param>
/// <param name="Tags">The new tags, replacing the old ones (at most 32).</param>
/// <param name="Enabled">False disables the device: it is refused on every protocol and its connections drop at once.</param>
/// <param name="CertificateThumbprint">A SHA-256 client-certificate thumbprint (64 hex digits), or <c>""</c> to remove it;
/// a change drops the device's live connections.</param>
public sealed record UpdateDeviceRequest(string? Name, string? Profile, IReadOnlyList<string>? Tags, bool? Enabled, string? CertificateThumbprint = null);

/// <summary>Applies <paramref name="Changes"/> to device <paramref name="Id"/>.</summary>
public sealed record UpdateDeviceCommand(string Id, UpdateDeviceRequest Changes) : IRequest<UpdateDeviceResult>;

/// <summary>How an update ended; only <see cref="UpdateDeviceOutcome.Updated"/> changed anything.</summary>
public enum UpdateDeviceOutcome
{
    /// <summary>Saved: the result carries the device as it is now (HTTP 200).</summary>
    Updated,
    /// <summary>No device has this id (HTTP 404).</summary>
    DeviceNotFound,
    /// <summary>The requested profile does not exist (HTTP 400 naming <c>profile</c>).</summary>
    UnknownProfile,
}

/// <summary>The outcome of an <see cref="UpdateDeviceCommand"/>, with the device as it is now when it is
/// <see cref="UpdateDeviceOutcome.Updated"/>, else null.</summary>
public sealed record UpdateDeviceResult(UpdateDeviceOutcome Outcome, DeviceView? Device);

internal sealed class UpdateDeviceValidator : AbstractValidator<UpdateDeviceRequest>
{
    public UpdateDeviceValidator()
    {
        RuleFor(x => x.Name).MaximumLength(200);
        RuleFor(x => x.Profile).Must(p => p is null || p.Length == 0 || Identifier.IsValid(p)).WithMessage($"profile must be {Identifier.Rule}");
        RuleFor(x => x.Tags).Must(t => t is null || t.Count <= 32).WithMessage("at most 32 tags");
        RuleForEach(x => x.Tags).Must(t => Identifier.IsValid(t)).WithMessage($"each tag must be {Identifier.Rule}");
        RuleFor(x => x.CertificateThumbprint).Must(DeviceView.IsThumbprint).WithMessage("certificateThumbprint must be a SHA-256 thumbprint (64 hex digits), or empty to remove it");
    }
}

internal sealed class UpdateDeviceHandler(HubDb db, IMediator mediator, DevicePresence presence, DeviceAuthenticator authenticator, TimeProvider time) : IRequestHandler<UpdateDeviceCommand, UpdateDeviceResult>
{
    public async ValueTask<UpdateDeviceResult> Handle(UpdateDeviceCommand c, CancellationToken ct)
    {
        var d = await db.Set<Device>().FirstOrDefaultAsync(x => x.Id == c.Id, ct);
        if (d is null) return new UpdateDeviceResult(UpdateDeviceOutcome.DeviceNotFound, null);
        var ch = c.Changes;
        if (ch.Name is not null) d.Name = ch.Name;
        var profileChanged = false;
        if (ch.Profile is not null)
        {
            var profile = ch.Profile.Length == 0 ? null : ch.Profile;
            if (profile is not null && !await db.Set<Profiles.DeviceProfile>().AnyAsync(p => p.Id == profile, ct))
                return new UpdateDeviceResult(UpdateDeviceOutcome.UnknownProfile, null);
            profileChanged = profile != d.ProfileId;
            d.ProfileId = profile;
        }
        if (ch.Tags is not null) d.Tags = Device.JoinTags(ch.Tags);
        var certificateChanged = ch.CertificateThumbprint is not null && DeviceView.NormaliseThumbprint(ch.CertificateThumbprint) is var t && (t!.Length == 0 ? null : t) != d.CertificateThumbprint;
        if (certificateChanged) d.CertificateThumbprint = DeviceView.NormaliseThumbprint(ch.CertificateThumbprint) is { Length: > 0 } thumbprint ? thumbprint : null;
        var disabling = ch.Enabled == false && d.Enabled;
        if (ch.Enabled is { } enabled) d.Enabled = enabled;
        await db.SaveChangesAsync(ct);
        // Profile and enabled state are cached by the authenticator; a disabled device also loses its connections.
        authenticator.Invalidate(d.Id);
        if (disabling || certificateChanged) await mediator.Publish(new DeviceCredentialsRevoked(d.Id), ct);
        if (profileChanged) await mediator.Publish(new DeviceProfileAssigned(d.Id, d.ProfileId), ct);
        await mediator.Publish(new DeviceUpdated(d.Id), ct);
        return new UpdateDeviceResult(UpdateDeviceOutcome.Updated, DeviceView.Of(d, presence, await DeviceView.ReportIntervalsAsync(db, ct), time.NowMs()));
    }

    public static void Map(RouteGroupBuilder api) =>
        api.MapPatch("/devices/{id}", async Task<Results<Ok<DeviceView>, ValidationProblem, NotFoundProblem>> (string id, UpdateDeviceRequest body,
                IValidator<UpdateDeviceRequest> validator, IMediator m, CancellationToken ct) =>
            {
                var v = await validator.ValidateAsync(body, ct);
                if (!v.IsValid) return TypedResults.ValidationProblem(v.ToDictionary());
                var result = await m.Send(new UpdateDeviceCommand(id, body), ct);
                return result.Outcome switch
                {
                    UpdateDeviceOutcome.Updated => TypedResults.Ok(result.Device),
                    UpdateDeviceOutcome.UnknownProfile =>
                        TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["profile"] = [$"no profile '{body.Profile}'"] }),
                    _ => DeviceResults.NotFound(id),
                };
            })
            .RequireAuthorization("operator")
            .WithName("UpdateDevice").WithSummary("Rename, retag, assign a profile, register a client-certificate thumbprint, enable or disable a device").WithTags("Devices");
}
