// First start with no users: create `admin` with Bootstrap:AdminPassword, or a random password that is
// printed once to the log and written to <DataDirectory>/initial-admin-password (readable by the owner only).
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
    TimeProvider time, ILogger<AdminBootstrap> log) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<HubDb>();
        if (await db.Set<User>().AnyAsync(cancellationToken)) return;
        var configured = options.Value.AdminPassword;
        var password = string.IsNullOrEmpty(configured) ? Secret.New()[..24] : configured;
        var user = new User { Username = "admin", Role = Roles.Admin, CreatedAt = time.NowMs() };
        user.PasswordHash = scope.ServiceProvider.GetRequiredService<IPasswordHasher<User>>().HashPassword(user, password);
        db.Add(user);
        await db.SaveChangesAsync(cancellationToken);
        if (!string.IsNullOrEmpty(configured))
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
}
