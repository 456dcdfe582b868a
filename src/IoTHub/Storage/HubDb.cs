// The one EF Core model. Each module owns its entities and their IEntityTypeConfiguration in its own folder;
// the model picks them up from the assembly, so Storage never names another module's types.
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Storage;

internal abstract class HubDb(DbContextOptions options) : DbContext(options)
{
    protected override void OnModelCreating(ModelBuilder modelBuilder)
        => modelBuilder.ApplyConfigurationsFromAssembly(typeof(HubDb).Assembly, t => !t.IsAbstract);
}

/// <summary>The SQLite model; its migrations are under <c>Storage/Migrations/Sqlite</c>.</summary>
internal sealed class SqliteHubDb(DbContextOptions<SqliteHubDb> options) : HubDb(options);

/// <summary>The PostgreSQL model; its migrations are under <c>Storage/Migrations/Postgres</c>.</summary>
internal sealed class PostgresHubDb(DbContextOptions<PostgresHubDb> options) : HubDb(options);
