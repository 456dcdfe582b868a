using FluentValidation;
using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Devices.Profiles;

/// <summary>A device profile as <c>POST /api/v1/profiles</c> and <c>PUT /api/v1/profiles/{id}</c> take it: what devices
/// of a kind send and how validation treats their telemetry. A PUT replaces the whole profile; validation uses it from
/// the next message on. Invalid fields answer 400 with problem+json naming each.</summary>
/// <param name="Id">The profile id, an identifier; required by POST, ignored by PUT (the path names it).</param>
/// <param name="Name">A label for people, at most 200 characters.</param>
/// <param name="UnknownMetrics"><c>allow</c> (default): metrics the profile does not declare are stored as they come;
/// <c>reject</c>: a message with one is dead-lettered.</param>
/// <param name="ClockPolicy">What to do with a message whose device clock is off by more than the tolerance:
/// <c>reject</c> (default), <c>serverTime</c> or <c>accept</c> (CONTRACT.md, "Telemetry payload").</param>
/// <param name="ReportIntervalSeconds">How often its devices report, 1 to 604,800 seconds (7 days); a device silent for
/// more than twice this is shown as inactive. Null: no expectation.</param>
/// <param name="Metrics">The declared metrics, at most 500, names unique.</param>
public sealed record ProfileBody(string? Id, string? Name, string? UnknownMetrics, string? ClockPolicy, int? ReportIntervalSeconds, IReadOnlyList<ProfileMetric>? Metrics);

/// <summary>A stored device profile, as <c>/api/v1/profiles</c> answers it; the fields are those of <see cref="ProfileBody"/>
/// with the defaults filled in.</summary>
/// <param name="Id">The profile id.</param>
/// <param name="Name">Its label, or null.</param>
/// <param name="UnknownMetrics"><c>allow</c> or <c>reject</c>.</param>
/// <param name="ClockPolicy"><c>reject</c>, <c>serverTime</c> or <c>accept</c>.</param>
/// <param name="ReportIntervalSeconds">The expected report interval in seconds, or null.</param>
/// <param name="Metrics">The declared metrics.</param>
/// <param name="CreatedAt">When it was created (ISO 8601 UTC).</param>
public sealed record ProfileView(string Id, string? Name, string UnknownMetrics, string ClockPolicy, int? ReportIntervalSeconds,
    IReadOnlyList<ProfileMetric> Metrics, DateTimeOffset CreatedAt);

/// <summary>Creates (<paramref name="Create"/> true) or replaces the profile <paramref name="Id"/> with <paramref name="Body"/>,
/// and tells validation.</summary>
public sealed record SaveProfileCommand(string Id, ProfileBody Body, bool Create) : IRequest<SaveProfileResult>;

/// <summary>How a save ended; only <see cref="SaveProfileOutcome.Saved"/> changed anything.</summary>
public enum SaveProfileOutcome
{
    /// <summary>Created or replaced: the result carries the profile as stored (HTTP 201 or 200).</summary>
    Saved,
    /// <summary>Creating, but a profile with this id exists already (HTTP 409).</summary>
    IdTaken,
    /// <summary>Replacing, but no profile has this id (HTTP 404).</summary>
    NotFound,
}

/// <summary>The outcome of a <see cref="SaveProfileCommand"/>, with the stored profile when it is
/// <see cref="SaveProfileOutcome.Saved"/>, else null.</summary>
public sealed record SaveProfileResult(SaveProfileOutcome Outcome, ProfileView? Profile);

/// <summary>One profile, or null when no profile has this id.</summary>
public sealed record GetProfileQuery(string Id) : IRequest<ProfileView?>;

/// <summary>Every profile in id order, in one page (<c>next</c> is always null).</summary>
public sealed record ListProfilesQuery : IRequest<Page<ProfileView>>;

/// <summary>Deletes a profile that no device uses.</summary>
public sealed record DeleteProfileCommand(string Id) : IRequest<DeleteProfileOutcome>;

/// <summary>How a profile deletion ended.</summary>
public enum DeleteProfileOutcome
{
    /// <summary>Deleted; validation stops using it at once (HTTP 204).</summary>
    Deleted,
    /// <summary>No profile has this id (HTTP 404).</summary>
    NotFound,
    /// <summary>Devices still use it; nothing changed (HTTP 409). Assign them another profile first.</summary>
    InUse,
}

internal sealed class ProfileBodyValidator : AbstractValidator<ProfileBody>
{
    public ProfileBodyValidator()
    {
        RuleFor(x => x.Id).Must(id => id is null || Identifier.IsValid(id)).WithMessage($"id must be {Identifier.Rule}");
        RuleFor(x => x.Name).MaximumLength(200);
        RuleFor(x => x.UnknownMetrics).Must(v => v is null || ProfileValues.UnknownMetrics.Contains(v)).WithMessage("unknownMetrics must be allow or reject");
        RuleFor(x => x.ClockPolicy).Must(v => v is null || ProfileValues.ClockPolicies.Contains(v)).WithMessage("clockPolicy must be reject, serverTime or accept");
        RuleFor(x => x.ReportIntervalSeconds).InclusiveBetween(1, 7 * 86400).When(x => x.ReportIntervalSeconds is not null);
        RuleFor(x => x.Metrics).Must(m => m is null || m.Count <= 500).WithMessage("at most 500 metrics")
            .Must(m => m is null || m.Select(x => x.Name).Distinct().Count() == m.Count).WithMessage("metric names must be unique");
        RuleForEach(x => x.Metrics).ChildRules(m =>
        {
            m.RuleFor(x => x.Name).Must(n => Identifier.IsValid(n)).WithMessage($"metric names must be {Identifier.Rule}");
            m.RuleFor(x => x.Type).Must(t => ProfileValues.Types.Contains(t)).WithMessage("type must be number, boolean or string");
            m.RuleFor(x => x.Unit).MaximumLength(32);
            m.RuleFor(x => x).Must(x => x.Min is null || x.Max is null || x.Min <= x.Max).WithMessage("min must not exceed max");
            m.RuleFor(x => x).Must(x => x.Type == "number" || (x.Min is null && x.Max is null)).WithMessage("only numbers have a range");
        });
    }
}

internal sealed class ProfilesHandler(HubDb db, IMediator mediator, TimeProvider time) :
    IRequestHandler<SaveProfileCommand, SaveProfileResult>, IRequestHandler<GetProfileQuery, ProfileView?>,
    IRequestHandler<ListProfilesQuery, Page<ProfileView>>, IRequestHandler<DeleteProfileCommand, DeleteProfileOutcome>,
    IRequestHandler<ListTelemetryProfiles, TelemetryProfiles>
{
    public async ValueTask<SaveProfileResult> Handle(SaveProfileCommand c, CancellationToken ct)
    {
        var profile = await db.Set<DeviceProfile>().FirstOrDefaultAsync(p => p.Id == c.Id, ct);
        if (c.Create && profile is not null) return new(SaveProfileOutcome.IdTaken, null);
        if (!c.Create && profile is null) return new(SaveProfileOutcome.NotFound, null);
        if (profile is null)
        {
            profile = new DeviceProfile { Id = c.Id, CreatedAt = time.NowMs() };
            db.Add(profile);
        }
        var b = c.Body;
        profile.Name = b.Name;
        profile.UnknownMetrics = b.UnknownMetrics ?? "allow";
        profile.ClockPolicy = b.ClockPolicy ?? "reject";
        profile.ReportIntervalSeconds = b.ReportIntervalSeconds;
        profile.Metrics = (b.Metrics ?? []).ToList();
        await db.SaveChangesAsync(ct);
        await mediator.Publish(new ProfileChanged(profile.ToTelemetryProfile()), ct);
        return new(SaveProfileOutcome.Saved, View(profile));
    }

    public async ValueTask<ProfileView?> Handle(GetProfileQuery q, CancellationToken ct) =>
        await db.Set<DeviceProfile>().AsNoTracking().FirstOrDefaultAsync(p => p.Id == q.Id, ct) is { } p ? View(p) : null;

    public async ValueTask<Page<ProfileView>> Handle(ListProfilesQuery q, CancellationToken ct) =>
        new((await db.Set<DeviceProfile>().AsNoTracking().OrderBy(p => p.Id).ToListAsync(ct)).Select(View).ToList(), null);

    public async ValueTask<DeleteProfileOutcome> Handle(DeleteProfileCommand c, CancellationToken ct)
    {
        if (await db.Set<Device>().AnyAsync(d => d.ProfileId == c.Id, ct)) return DeleteProfileOutcome.InUse;
        var n = await db.Set<DeviceProfile>().Where(p => p.Id == c.Id).ExecuteDeleteAsync(ct);
        if (n == 0) return DeleteProfileOutcome.NotFound;
        await mediator.Publish(new ProfileDeleted(c.Id), ct);
        return DeleteProfileOutcome.Deleted;
    }

    public async ValueTask<TelemetryProfiles> Handle(ListTelemetryProfiles q, CancellationToken ct)
    {
        var profiles = await db.Set<DeviceProfile>().AsNoTracking().ToListAsync(ct);
        var assignments = await db.Set<Device>().AsNoTracking().Where(d => d.ProfileId != null).Select(d => new { d.Id, d.ProfileId }).ToListAsync(ct);
        return new TelemetryProfiles(profiles.Select(p => p.ToTelemetryProfile()).ToList(), assignments.Select(a => (a.Id, a.ProfileId!)).ToList());
    }

    private static ProfileView View(DeviceProfile p) =>
        new(p.Id, p.Name, p.UnknownMetrics, p.ClockPolicy, p.ReportIntervalSeconds, p.Metrics, UnixTime.ToDateTime(p.CreatedAt));

    public static void Map(RouteGroupBuilder api)
    {
        api.MapPost("/profiles", async Task<Results<Created<ProfileView>, ValidationProblem, ConflictProblem>> (ProfileBody body,
                IValidator<ProfileBody> validator, IMediator m, CancellationToken ct) =>
            {
                var v = await validator.ValidateAsync(body, ct);
                if (!v.IsValid) return TypedResults.ValidationProblem(v.ToDictionary());
                if (body.Id is null) return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["id"] = ["id is required"] });
                var result = await m.Send(new SaveProfileCommand(body.Id, body, Create: true), ct);
                return result.Outcome == SaveProfileOutcome.Saved
                    ? TypedResults.Created($"/api/v1/profiles/{body.Id}", result.Profile)
                    : new ConflictProblem($"Profile '{body.Id}' already exists");
            })
            .RequireAuthorization("operator")
            .WithName("CreateProfile").WithSummary("Create a device profile: metrics with type, unit and range").WithTags("Profiles");
        api.MapPut("/profiles/{id}", async Task<Results<Ok<ProfileView>, ValidationProblem, NotFoundProblem>> (string id, ProfileBody body,
                IValidator<ProfileBody> validator, IMediator m, CancellationToken ct) =>
            {
                var v = await validator.ValidateAsync(body, ct);
                if (!v.IsValid) return TypedResults.ValidationProblem(v.ToDictionary());
                var result = await m.Send(new SaveProfileCommand(id, body, Create: false), ct);
                return result.Outcome == SaveProfileOutcome.Saved ? TypedResults.Ok(result.Profile) : new NotFoundProblem($"Profile '{id}' not found");
            })
            .RequireAuthorization("operator")
            .WithName("UpdateProfile").WithSummary("Replace a device profile; validation uses it at once").WithTags("Profiles");
        api.MapGet("/profiles", async Task<Ok<Page<ProfileView>>> (IMediator m, CancellationToken ct) => TypedResults.Ok(await m.Send(new ListProfilesQuery(), ct)))
            .WithName("ListProfiles").WithSummary("All device profiles").WithTags("Profiles");
        api.MapGet("/profiles/{id}", async Task<Results<Ok<ProfileView>, NotFoundProblem>> (string id, IMediator m, CancellationToken ct) =>
                await m.Send(new GetProfileQuery(id), ct) is { } p ? TypedResults.Ok(p) : new NotFoundProblem($"Profile '{id}' not found"))
            .WithName("GetProfile").WithSummary("One device profile").WithTags("Profiles");
        api.MapDelete("/profiles/{id}", async Task<Results<NoContent, NotFoundProblem, ConflictProblem>> (string id, IMediator m, CancellationToken ct) =>
                await m.Send(new DeleteProfileCommand(id), ct) switch
                {
                    DeleteProfileOutcome.Deleted => TypedResults.NoContent(),
                    DeleteProfileOutcome.InUse => new ConflictProblem($"Profile '{id}' is assigned to devices"),
                    _ => new NotFoundProblem($"Profile '{id}' not found"),
                })
            .RequireAuthorization("operator")
            .WithName("DeleteProfile").WithSummary("Delete an unused device profile").WithTags("Profiles");
    }
}
