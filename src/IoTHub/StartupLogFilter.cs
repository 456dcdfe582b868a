// While the host starts, three loggers write errors that are noise or that the one-sentence start-up failure says
// better: EF Core's "Failed executing DbCommand" when it probes a new database for its migrations history table (an
// error on every first start against an empty PostgreSQL database), its connection error before a refused password,
// and the generic host's "Hosting failed to start" with the whole stack trace. Once the host has started they log as
// configured again. A fourth until the hub is ready: the health checks' "Health check broker with status Unhealthy" for a
// readiness probe that came after HTTP was up and before the MQTT broker's listeners were (MQTTnet starts them after the
// host has started): a probe during a start is answered 503, and is not an error (CI caught it as one on a first start).
namespace IoTHub;

/// <summary>Holds back Error-level lines of the host's and EF Core's database loggers until the host has started.</summary>
internal sealed class StartupLogFilter
{
    private static readonly string[] Categories =
    [
        "Microsoft.Extensions.Hosting.Internal.Host",
        "Microsoft.EntityFrameworkCore.Database.Command",
        "Microsoft.EntityFrameworkCore.Database.Connection",
    ];

    private const string HealthChecks = "Microsoft.Extensions.Diagnostics.HealthChecks.DefaultHealthCheckService";

    private volatile bool _started;
    private volatile bool _ready;

    /// <summary>Adds the filter to the builder's logging; call <see cref="Started"/> once the host has started.</summary>
    public static StartupLogFilter AddTo(WebApplicationBuilder builder)
    {
        var filter = new StartupLogFilter();
        foreach (var category in Categories)
        {
            // A rule for the category replaces the configured level for it: the configured one is applied here again.
            var configured = new Lazy<LogLevel>(() => ConfiguredLevel(builder.Configuration, category));
            builder.Logging.AddFilter(category, level => level >= configured.Value && (filter._started || level != LogLevel.Error));
        }
        var health = new Lazy<LogLevel>(() => ConfiguredLevel(builder.Configuration, HealthChecks));
        builder.Logging.AddFilter(HealthChecks, level => level >= health.Value && (filter._ready || level < LogLevel.Error));
        return filter;
    }

    /// <summary>The host has started: the host's and EF Core's errors are logged again.</summary>
    public void Started() => _started = true;

    /// <summary>Every listener is up (the MQTT broker's too): a failing readiness check is an error again.</summary>
    public void Ready() => _ready = true;

    /// <summary>The level Logging:LogLevel gives the category: its longest matching prefix, else Default, else Information.</summary>
    internal static LogLevel ConfiguredLevel(IConfiguration config, string category)
    {
        var levels = config.GetSection("Logging:LogLevel").GetChildren()
            .Where(c => Enum.TryParse<LogLevel>(c.Value, ignoreCase: true, out _)).ToList();
        var match = levels.Where(c => c.Key != "Default" && (category == c.Key || category.StartsWith(c.Key + ".", StringComparison.Ordinal)))
            .MaxBy(c => c.Key.Length) ?? levels.FirstOrDefault(c => c.Key == "Default");
        return match is null ? LogLevel.Information : Enum.Parse<LogLevel>(match.Value!, ignoreCase: true);
    }
}
