using System.Security.Cryptography;
using FluentValidation;
using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Devices.CreateDevice;

/// <summary>Registers a device: the body of <c>POST /api/v1/devices</c>, all fields optional (an empty body is a device
/// with a generated id), and one line of a CSV import. Invalid fields answer 400 with problem+json naming each.</summary>
/// <param name="Id">The device id, 1-64 of <c>A-Za-z0-9_.-</c> (CONTRACT.md, "Identity"); generated when absent
/// (<c>dev-</c> and 12 random characters). An id in use answers 409.</param>
/// <param name="Name">A label for people, at most 200 characters.</param>
/// <param name="Profile">The id of an existing profile whose metric rules validate its telemetry; an unknown one answers
/// 400 naming <c>profile</c>.</param>
/// <param name="Tags">At most 32 tags, each an identifier; for filtering the devices list.</param>
/// <param name="CertificateThumbprint">SHA-256 thumbprint (64 hex digits; colons and case ignored) of a client certificate
/// the device may present over TLS instead of its token.</param>
public sealed record CreateDeviceRequest(string? Id, string? Name, string? Profile, IReadOnlyList<string>? Tags, string? CertificateThumbprint = null) : IRequest<CreateDeviceResult>;

/// <summary>The only response that ever carries the device's token (201 to <c>POST /api/v1/devices</c>):
/// <c>{"id", "name", "token", "profile", "tags", "createdAt"}</c>.</summary>
/// <param name="Id">The device id (the MQTT username).</param>
/// <param name="Name">Its label, or null.</param>
/// <param name="Token">The device token (the MQTT password, the HTTP bearer): 256 random bits as 43 base64url characters.
/// Only its hash is stored, so it cannot be shown again; rotate it to get a new one.</param>
/// <param name="Profile">Its profile id, or null.</param>
/// <param name="Tags">Its tags.</param>
/// <param name="CreatedAt">When it was registered (ISO 8601 UTC).</param>
public sealed record CreatedDevice(string Id, string? Name, string Token, string? Profile, IReadOnlyList<string> Tags, DateTimeOffset CreatedAt);

/// <summary>How a registration ended; only <see cref="CreateDeviceOutcome.Created"/> changed anything.</summary>
public enum CreateDeviceOutcome
{
    /// <summary>Registered: the result carries the device with its token (HTTP 201).</summary>
    Created,
    /// <summary>A device with the requested id exists already (HTTP 409).</summary>
    IdTaken,
    /// <summary>The requested profile does not exist (HTTP 400 naming <c>profile</c>).</summary>
    UnknownProfile,
}

/// <summary>The outcome of a <see cref="CreateDeviceRequest"/>, with the new device when it is
/// <see cref="CreateDeviceOutcome.Created"/>, else null.</summary>
public sealed record CreateDeviceResult(CreateDeviceOutcome Outcome, CreatedDevice? Device);

internal sealed class CreateDeviceValidator : AbstractValidator<CreateDeviceRequest>
{
    public CreateDeviceValidator()
    {
        RuleFor(x => x.Id).Must(id => id is null || Identifier.IsValid(id)).WithMessage($"id must be {Identifier.Rule}");
        RuleFor(x => x.Name).MaximumLength(200)
            .Must(n => n is null || !n.Contains('\0')).WithMessage("name may not contain U+0000"); // a CSV import line is not JSON
        RuleFor(x => x.Profile).Must(p => p is null || Identifier.IsValid(p)).WithMessage($"profile must be {Identifier.Rule}");
        RuleFor(x => x.Tags).Must(t => t is null || t.Count <= 32).WithMessage("at most 32 tags");
        RuleForEach(x => x.Tags).Must(t => Identifier.IsValid(t)).WithMessage($"each tag must be {Identifier.Rule}");
        RuleFor(x => x.CertificateThumbprint).Must(DeviceView.IsThumbprint).WithMessage("certificateThumbprint must be a SHA-256 thumbprint (64 hex digits)");
    }
}

internal sealed class CreateDeviceHandler(HubDb db, IMediator mediator, TimeProvider time, DevicePsk psk) : IRequestHandler<CreateDeviceRequest, CreateDeviceResult>
{
    public async ValueTask<CreateDeviceResult> Handle(CreateDeviceRequest r, CancellationToken ct)
    {
        var id = r.Id ?? NewId();
        if (await db.Set<Device>().AnyAsync(d => d.Id == id, ct)) return new CreateDeviceResult(CreateDeviceOutcome.IdTaken, null);
        if (r.Profile is not null && !await db.Set<Profiles.DeviceProfile>().AnyAsync(p => p.Id == r.Profile, ct))
            return new CreateDeviceResult(CreateDeviceOutcome.UnknownProfile, null);
        var token = Secret.New();
        var device = new Device
        {
            Id = id, Name = r.Name, TokenHash = Secret.Hash(token), DtlsPsk = psk.Protect(token), ProfileId = r.Profile,
            Tags = Device.JoinTags(r.Tags), CreatedAt = time.NowMs(),
            CertificateThumbprint = DeviceView.NormaliseThumbprint(r.CertificateThumbprint) is { Length: > 0 } t ? t : null,
        };
        db.Add(device);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException)
        {
            // Lost a race with a concurrent create of the same id.
            if (await db.Set<Device>().AsNoTracking().AnyAsync(d => d.Id == id, ct)) return new CreateDeviceResult(CreateDeviceOutcome.IdTaken, null);
            throw;
        }
        finally
        {
            // One scope may create thousands of devices (a CSV import): left tracked, each would be checked again by
            // every later SaveChanges, and one that failed to insert would be retried by it.
            db.Entry(device).State = EntityState.Detached;
        }
        if (r.Profile is not null) await mediator.Publish(new DeviceProfileAssigned(id, r.Profile), ct);
        await mediator.Publish(new DeviceCreated(id), ct);
        return new CreateDeviceResult(CreateDeviceOutcome.Created,
            new CreatedDevice(id, r.Name, token, r.Profile, device.TagList, UnixTime.ToDateTime(device.CreatedAt)));
    }

    /// <summary>"dev-" and 12 lowercase base32 characters (60 random bits): readable, unique enough for a fleet.</summary>
    internal static string NewId()
    {
        const string alphabet = "abcdefghijkmnpqrstuvwxyz23456789";
        Span<char> chars = stackalloc char[12];
        for (var i = 0; i < chars.Length; i++) chars[i] = alphabet[RandomNumberGenerator.GetInt32(alphabet.Length)];
        return "dev-" + new string(chars);
    }

    public static void Map(RouteGroupBuilder api) =>
        api.MapPost("/devices", async Task<Results<Created<CreatedDevice>, ValidationProblem, ConflictProblem>> (CreateDeviceRequest? body,
                IValidator<CreateDeviceRequest> validator, IMediator m, CancellationToken ct) =>
            {
                body ??= new CreateDeviceRequest(null, null, null, null);
                var v = await validator.ValidateAsync(body, ct);
                if (!v.IsValid) return TypedResults.ValidationProblem(v.ToDictionary());
                var result = await m.Send(body, ct);
                return result.Outcome switch
                {
                    CreateDeviceOutcome.Created => TypedResults.Created($"/api/v1/devices/{result.Device!.Id}", result.Device),
                    CreateDeviceOutcome.UnknownProfile =>
                        TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["profile"] = [$"no profile '{body.Profile}'"] }),
                    _ => new ConflictProblem($"Device '{body.Id}' already exists"),
                };
            })
            .RequireAuthorization("operator")
            .WithName("CreateDevice").WithSummary("Register a device; the response is the only time its token is shown").WithTags("Devices");
}
