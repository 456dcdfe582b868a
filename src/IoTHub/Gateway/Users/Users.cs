using FluentValidation;
using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Gateway.Users;

/// <summary>Creates a user of the web UI and the API: the body of <c>POST /api/v1/users</c> (admin). Invalid fields answer
/// 400; a taken username 409. The handler answers null when the username is taken.</summary>
/// <param name="Username">An identifier, at most 64 characters.</param>
/// <param name="Password">10 to 256 characters; stored only as a slow hash (ASP.NET Core Identity's PBKDF2).</param>
/// <param name="Role"><c>viewer</c>, <c>operator</c> or <c>admin</c>.</param>
public sealed record CreateUserRequest(string Username, string Password, string Role) : IRequest<UserView?>;

/// <summary>Every user in username order, in one page.</summary>
public sealed record ListUsersQuery : IRequest<Page<UserView>>;

/// <summary>A user as the API shows it (never the password or its hash).</summary>
/// <param name="Id">The user's id.</param>
/// <param name="Username">Their name.</param>
/// <param name="Role">Their role.</param>
/// <param name="CreatedAt">When they were created (ISO 8601 UTC).</param>
public sealed record UserView(long Id, string Username, string Role, DateTimeOffset CreatedAt);

internal sealed class CreateUserValidator : AbstractValidator<CreateUserRequest>
{
    public CreateUserValidator()
    {
        RuleFor(x => x.Username).NotEmpty().MaximumLength(64).Must(u => Identifier.IsValid(u)).WithMessage($"username must be {Identifier.Rule}");
        RuleFor(x => x.Password).NotEmpty().MinimumLength(10).MaximumLength(256).WithMessage("password must be 10 to 256 characters");
        RuleFor(x => x.Role).Must(Roles.IsValid).WithMessage("role must be admin, operator or viewer");
    }
}

internal sealed class UsersHandler(HubDb db, IPasswordHasher<User> hasher, TimeProvider time)
    : IRequestHandler<CreateUserRequest, UserView?>, IRequestHandler<ListUsersQuery, Page<UserView>>
{
    public async ValueTask<UserView?> Handle(CreateUserRequest r, CancellationToken ct)
    {
        if (await db.Set<User>().AnyAsync(u => u.Username == r.Username, ct)) return null;
        var user = new User { Username = r.Username, Role = r.Role, CreatedAt = time.NowMs() };
        user.PasswordHash = hasher.HashPassword(user, r.Password);
        db.Add(user);
        await db.SaveChangesAsync(ct);
        return View(user);
    }

    public async ValueTask<Page<UserView>> Handle(ListUsersQuery q, CancellationToken ct)
    {
        var users = await db.Set<User>().AsNoTracking().OrderBy(u => u.Username).ToListAsync(ct);
        return new Page<UserView>(users.Select(View).ToList(), null);
    }

    private static UserView View(User u) => new(u.Id, u.Username, u.Role, UnixTime.ToDateTime(u.CreatedAt));

    public static void Map(RouteGroupBuilder api)
    {
        api.MapPost("/users", async Task<Results<Created<UserView>, ValidationProblem, ConflictProblem>> (CreateUserRequest body,
                IValidator<CreateUserRequest> validator, IMediator m, CancellationToken ct) =>
            {
                var v = await validator.ValidateAsync(body, ct);
                if (!v.IsValid) return TypedResults.ValidationProblem(v.ToDictionary());
                return await m.Send(body, ct) is { } u
                    ? TypedResults.Created($"/api/v1/users/{u.Id}", u)
                    : new ConflictProblem($"User '{body.Username}' already exists");
            })
            .RequireAuthorization("admin")
            .WithName("CreateUser").WithSummary("Create a user of the web UI and API").WithTags("Users");
        api.MapGet("/users", async Task<Ok<Page<UserView>>> (IMediator m, CancellationToken ct) => TypedResults.Ok(await m.Send(new ListUsersQuery(), ct)))
            .RequireAuthorization("admin")
            .WithName("ListUsers").WithSummary("All users").WithTags("Users");
    }
}
