using FluentValidation;
using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Devices.Profiles;

public sealed record ProfileBody(string? Id, string? Name, string? UnknownMetrics, string? ClockPolicy, int? ReportIntervalSeconds, IReadOnlyList<ProfileMetric>? Metrics);

public sealed record ProfileView(string Id, string? Name, string UnknownMetrics, string ClockPolicy, int? ReportIntervalSeconds,
    IReadOnlyList<ProfileMetric> Metrics, DateTimeOffset CreatedAt);

public sealed record SaveProfileCommand(string Id, ProfileBody Body, bool Create) : IRequest<(ProfileView? Profile, bool Conflict)>;

public sealed record GetProfileQuery(string Id) : IRequest<ProfileView?>;

public sealed record ListProfilesQuery : IRequest<Page<ProfileView>>;

public sealed record DeleteProfileCommand(string Id) : IRequest<(bool Found, bool InUse)>;

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
    IRequestHandler<SaveProfileCommand, (ProfileView?, bool)>, IRequestHandler<GetProfileQuery, ProfileView?>,
    IRequestHandler<ListProfilesQuery, Page<ProfileView>>, IRequestHandler<DeleteProfileCommand, (bool, bool)>,
    IRequestHandler<ListTelemetryProfiles, TelemetryProfiles>
{
    public async ValueTask<(ProfileView?, bool)> Handle(SaveProfileCommand c, CancellationToken ct)
    {
        var profile = await db.Set<DeviceProfile>().FirstOrDefaultAsync(p => p.Id == c.Id, ct);
        if (c.Create && profile is not null) return (null, true);
        if (!c.Create && profile is null) return (null, false);
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
        return (View(profile), false);
    }

    public async ValueTask<ProfileView?> Handle(GetProfileQuery q, CancellationToken ct) =>
        await db.Set<DeviceProfile>().AsNoTracking().FirstOrDefaultAsync(p => p.Id == q.Id, ct) is { } p ? View(p) : null;

    public async ValueTask<Page<ProfileView>> Handle(ListProfilesQuery q, CancellationToken ct) =>
        new((await db.Set<DeviceProfile>().AsNoTracking().OrderBy(p => p.Id).ToListAsync(ct)).Select(View).ToList(), null);

    public async ValueTask<(bool, bool)> Handle(DeleteProfileCommand c, CancellationToken ct)
    {
        if (await db.Set<Device>().AnyAsync(d => d.ProfileId == c.Id, ct)) return (true, true);
        var n = await db.Set<DeviceProfile>().Where(p => p.Id == c.Id).ExecuteDeleteAsync(ct);
        if (n > 0) await mediator.Publish(new ProfileDeleted(c.Id), ct);
        return (n > 0, false);
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
        api.MapPost("/profiles", async (ProfileBody body, IValidator<ProfileBody> validator, IMediator m, CancellationToken ct) =>
            {
                var v = await validator.ValidateAsync(body, ct);
                if (!v.IsValid) return Results.ValidationProblem(v.ToDictionary());
                if (body.Id is null) return Results.ValidationProblem(new Dictionary<string, string[]> { ["id"] = ["id is required"] });
                var (p, conflict) = await m.Send(new SaveProfileCommand(body.Id, body, Create: true), ct);
                return conflict ? Results.Problem(statusCode: 409, title: $"Profile '{body.Id}' already exists") : Results.Created($"/api/v1/profiles/{p!.Id}", p);
            })
            .RequireAuthorization("operator")
            .WithName("CreateProfile").WithSummary("Create a device profile: metrics with type, unit and range").WithTags("Profiles")
            .Produces<ProfileView>(201).ProducesValidationProblem().ProducesProblem(409);
        api.MapPut("/profiles/{id}", async (string id, ProfileBody body, IValidator<ProfileBody> validator, IMediator m, CancellationToken ct) =>
            {
                var v = await validator.ValidateAsync(body, ct);
                if (!v.IsValid) return Results.ValidationProblem(v.ToDictionary());
                var (p, _) = await m.Send(new SaveProfileCommand(id, body, Create: false), ct);
                return p is null ? Results.Problem(statusCode: 404, title: $"Profile '{id}' not found") : Results.Ok(p);
            })
            .RequireAuthorization("operator")
            .WithName("UpdateProfile").WithSummary("Replace a device profile; validation uses it at once").WithTags("Profiles")
            .Produces<ProfileView>().ProducesValidationProblem().ProducesProblem(404);
        api.MapGet("/profiles", async (IMediator m, CancellationToken ct) => Results.Ok(await m.Send(new ListProfilesQuery(), ct)))
            .WithName("ListProfiles").WithSummary("All device profiles").WithTags("Profiles").Produces<Page<ProfileView>>();
        api.MapGet("/profiles/{id}", async (string id, IMediator m, CancellationToken ct) =>
                await m.Send(new GetProfileQuery(id), ct) is { } p ? Results.Ok(p) : Results.Problem(statusCode: 404, title: $"Profile '{id}' not found"))
            .WithName("GetProfile").WithSummary("One device profile").WithTags("Profiles").Produces<ProfileView>().ProducesProblem(404);
        api.MapDelete("/profiles/{id}", async (string id, IMediator m, CancellationToken ct) =>
                await m.Send(new DeleteProfileCommand(id), ct) switch
                {
                    (_, true) => Results.Problem(statusCode: 409, title: $"Profile '{id}' is assigned to devices"),
                    (true, _) => Results.NoContent(),
                    _ => Results.Problem(statusCode: 404, title: $"Profile '{id}' not found"),
                })
            .RequireAuthorization("operator")
            .WithName("DeleteProfile").WithSummary("Delete an unused device profile").WithTags("Profiles").Produces(204).ProducesProblem(404).ProducesProblem(409);
    }
}
