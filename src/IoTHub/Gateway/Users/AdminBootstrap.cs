// First start with no users: create `admin` with Bootstrap:AdminPassword, or a random password that is
// printed once to the log and written to <DataDirectory>/initial-admin-password (readable by the owner only).
// Only once the hub has started (every listener bound): a start that fails (a port in use) creates no user, so the
// password a user sets after it is still the one the admin gets. A password set when users exist already is not used,
// and the log says so instead of ignoring it in silence.
using IoTHub.Contracts;
using IoTHub.Storage;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace IoTHub.Gateway.Users;

/// <summary>Section <c>Bootstrap</c>: the first start, when there is no user yet (CONTRACT.md, "Identity"). An <c>admin</c>
/// user is created with this password, or a random one that is logged once and written to
/// <c>&lt;data dir&gt;/initial-admin-password</c>.</summary>
public sealed class BootstrapOptions
{
    /// <summary>The configuration section: <c>Bootstrap</c> (environment: <c>IOTHUB_Bootstrap__AdminPassword</c>).</summary>
    public const string SectionName = "Bootstrap";

    /// <summary>Password of the first admin user; empty means generate one.</summary>
    public string? AdminPassword { get; set; }
}

internal sealed class AdminBootstrap(IServiceProvider services, IOptions<BootstrapOptions> options, IOptions<DataLocation> data,
    TimeProvider time, ILogger<AdminBootstrap> log) : IHostedLifecycleService
{
    /// <summary>The first user, made ready (its password hashed: the slow part) while the hub starts and stored only
    /// once it has started; null when users exist already.</summary>
    private (User User, string Password, bool Configured)? _first;

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Before the listeners bind: whether this is the first start, and the first user's password hash, so that
    /// storing it later delays nothing (the MQTT broker starts only after every StartedAsync).</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<HubDb>();
        var configured = options.Value.AdminPassword;
        if (await db.Set<User>().AnyAsync(cancellationToken))
        {
            if (!string.IsNullOrEmpty(configured))
                log.LogInformation("Bootstrap:AdminPassword is set but was not used: it applies to the first start only, and this database has users already (the first admin's password is the one it got then; a generated one was saved in {File})",
                    Path.Combine(data.Value.Directory, "initial-admin-password"));
            return;
        }
        var password = string.IsNullOrEmpty(configured) ? Secret.New()[..24] : configured;
        var user = new User { Username = "admin", Role = Roles.Admin, CreatedAt = time.NowMs() };
        user.PasswordHash = scope.ServiceProvider.GetRequiredService<IPasswordHasher<User>>().HashPassword(user, password);
        _first = (user, password, !string.IsNullOrEmpty(configured));
    }

    /// <summary>After every hosted service (the listeners too) has started: the first user is made by a start that
    /// worked.</summary>
    public async Task StartedAsync(CancellationToken cancellationToken)
    {
        if (_first is not var (user, password, configured)) return;
        _first = null;
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<HubDb>();
        if (await db.Set<User>().AnyAsync(cancellationToken)) return; // another hub node on the same database was first
        db.Add(user);
        await db.SaveChangesAsync(cancellationToken);
        if (configured)
        {
            log.LogInformation("Created user 'admin' with the password from Bootstrap:AdminPassword");
            return;
        }
        var file = Path.Combine(data.Value.Directory, "initial-admin-password");
        await OwnerOnly.WriteAllTextAsync(file, password + "\n", cancellationToken); // created 0600: never readable by others, not even for a moment
        // Printed once, on purpose: this is the only way a first-time user learns it (also in the file above).
        Console.WriteLine($"""

            ===================================================================
             IoTHub created the first user.   username: admin
                                              password: {password}
             (also saved in {file})
            ===================================================================

            """);
        log.LogInformation("Created user 'admin' with a generated password, printed above and saved in {File}", file);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
