using IoTHub.Contracts;
using IoTHub.Storage.Queries;
using IoTHub.Storage.Retention;
using IoTHub.Storage.Write;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace IoTHub.Storage;

/// <summary>The Storage module: the database (SQLite or PostgreSQL) and its schema, the group-commit telemetry writer,
/// dead letters, retention, and the telemetry queries.</summary>
public static class StorageModule
{
    /// <summary>Registers the store chosen by <c>Storage:Provider</c>, the ingest channels, the writer, retention, the schema
    /// migrator and the <c>database</c> readiness check; binds sections <c>Storage</c> and <c>Retention</c> (validated at start).</summary>
    public static IServiceCollection AddStorage(this IServiceCollection services, IConfiguration config)
    {
        services.AddOptions<StorageOptions>().BindConfiguration(StorageOptions.SectionName).ValidateDataAnnotations()
            .Validate(o => o.Provider != StorageProvider.Postgres || !string.IsNullOrWhiteSpace(config.GetConnectionString("Postgres")),
                "Storage:Provider is Postgres but ConnectionStrings:Postgres (env IOTHUB_ConnectionStrings__Postgres) is empty.")
            .ValidateOnStart();
        services.AddOptions<DataLocation>().Configure(d => d.Directory = Path.GetFullPath(config["DataDirectory"] is { Length: > 0 } dir ? dir : "data"));
        services.TryAddSingleton(TimeProvider.System); // a test host may bring its own clock
        // First: the data directory is private before anything writes there.
        services.AddHostedService<DataDirectoryGuard>();

        var provider = config.GetValue(StorageOptions.SectionName + ":Provider", StorageProvider.Sqlite);
        if (provider == StorageProvider.Postgres)
        {
            var cs = config.GetConnectionString("Postgres") ?? "";
            services.AddDbContext<HubDb, PostgresHubDb>(o => o.UseNpgsql(cs, n => n.EnableRetryOnFailure(0)));
            services.AddSingleton(sp =>
            {
                var o = sp.GetRequiredService<IOptions<StorageOptions>>().Value;
                return new TelemetryStores(Enumerable.Range(0, o.EffectiveWriters).Select(_ => (ITelemetryStore)new PostgresTelemetryStore(cs, o.DeadLetterPayloadLimit)).ToArray());
            });
            services.AddSingleton<IStoreMaintenance>(sp => new PostgresMaintenance(cs,
                PartitionDaysBack(sp.GetRequiredService<IOptions<RetentionOptions>>().Value, sp.GetRequiredService<IOptions<TelemetryAge>>().Value),
                sp.GetRequiredService<ILogger<PostgresMaintenance>>(), sp.GetRequiredService<TimeProvider>()));
        }
        else
        {
            services.AddDbContext<HubDb, SqliteHubDb>((sp, o) => o.UseSqlite(SqliteConnectionString(sp)));
            services.AddSingleton(sp => new TelemetryStores([new SqliteTelemetryStore(SqliteConnectionString(sp), sp.GetRequiredService<IOptions<StorageOptions>>().Value.DeadLetterPayloadLimit)]));
            services.AddSingleton<IStoreMaintenance>(sp => new SqliteMaintenance(SqliteConnectionString(sp)));
        }

        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<StorageOptions>>().Value;
            return new IngestChannels(o.IngestQueueCapacity, o.StoreQueueCapacity, o.EffectiveWriters);
        });
        services.AddSingleton<CommittedFeed>();
        // The outbox table is in the one model; any module adds rows (Outbox.Add) and calls Committed() after its commit.
        services.TryAddSingleton<Outbox>();
        services.AddOptions<TelemetryAge>().BindConfiguration(TelemetryAge.SectionName);
        services.AddOptions<RetentionOptions>().BindConfiguration(RetentionOptions.SectionName)
            .Validate(o => o.ByResolution.All(r => r is null || r > TimeSpan.Zero), "Retention periods must be positive (or empty for forever)")
            .Validate(o => o.Interval >= TimeSpan.FromSeconds(1), "Retention:Interval must be at least a second")
            .ValidateOnStart();
        services.AddSingleton<RetentionJob>();
        services.AddHostedService(sp => sp.GetRequiredService<RetentionJob>());
        services.AddSingleton<StoreHealth>();
        services.AddHealthChecks().AddCheck<DatabaseHealthCheck>("database", tags: ["ready"]);
        // Order matters: the schema is migrated before anything else starts; the writer stops last and drains.
        services.AddHostedService<SchemaMigrator>();
        services.AddSingleton<JobLeadership>();
        services.AddSingleton<IJobLeadership>(sp => sp.GetRequiredService<JobLeadership>());
        services.AddHostedService(sp => sp.GetRequiredService<JobLeadership>());
        services.AddSingleton<TelemetryWriter>();
        services.AddHostedService(sp => sp.GetRequiredService<TelemetryWriter>());
        return services;
    }

    /// <summary>Maps <c>/devices/{id}/telemetry/latest</c>, <c>GET /devices/{id}/telemetry</c>, <c>/retention</c> and
    /// <c>/dead-letters</c> on <paramref name="api"/>.</summary>
    public static IEndpointRouteBuilder MapStorage(this IEndpointRouteBuilder app, RouteGroupBuilder api)
    {
        GetLatestTelemetry.Map(api);
        QueryTelemetry.Map(api);
        RetentionEndpoints.Map(api);
        DeadLetters.ListDeadLettersHandler.Map(api);
        return app;
    }

    /// <summary>Raw partitions reach back as far as raw data is kept or accepted (Validation:MaxPastAge), whichever is longer.</summary>
    private static int PartitionDaysBack(RetentionOptions retention, TelemetryAge age)
    {
        var accepted = age.MaxPastAge;
        var kept = retention.Raw ?? accepted;
        return (int)Math.Ceiling(Math.Min(Math.Max(kept.TotalDays, accepted.TotalDays), 400));
    }

    internal static string SqliteConnectionString(IServiceProvider sp)
    {
        var dir = sp.GetRequiredService<IOptions<DataLocation>>().Value.Directory;
        var file = Path.Combine(dir, "iothub.db");
        OwnerOnly.CreateDirectory(dir);
        OwnerOnly.CreateFile(file); // 0600: SQLite gives its -wal and -shm files the database file's mode
        return $"Data Source={file};Cache=Private;Pooling=True;Default Timeout=30";
    }
}
