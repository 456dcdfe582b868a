// Which start-up lines are held back: a readiness probe that came after HTTP was up and before the MQTT broker's
// listeners were logged "Health check broker with status Unhealthy" as an error on a first start (CI caught it).
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace IoTHub.Tests.Host;

public sealed class StartupLogFilterSpecs
{
    private sealed class Lines : ILoggerProvider
    {
        public List<string> Written { get; } = [];

        public ILogger CreateLogger(string categoryName) => new Logger(this);

        public void Dispose()
        {
        }

        private sealed class Logger(Lines lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                lock (lines.Written) lines.Written.Add(formatter(state, exception));
            }
        }
    }

    /// <summary>A host builder's logging with the filter added, writing to a list; a logger of <paramref name="category"/>.</summary>
    private static (StartupLogFilter Filter, ILogger Logger, Lines Lines, ServiceProvider Services) Filtered(string category)
    {
        var builder = WebApplication.CreateBuilder();
        builder.Logging.ClearProviders();
        var lines = new Lines();
        builder.Logging.AddProvider(lines);
        var filter = StartupLogFilter.AddTo(builder);
        var services = builder.Services.BuildServiceProvider();
        return (filter, services.GetRequiredService<ILoggerFactory>().CreateLogger(category), lines, services);
    }

    [Test]
    public void A_failing_readiness_check_is_an_error_only_once_the_hub_has_been_ready()
    {
        var (filter, health, lines, services) = Filtered("Microsoft.Extensions.Diagnostics.HealthChecks.DefaultHealthCheckService");
        using var _ = services;

        health.LogError("before the start");
        health.LogWarning("a warning is not held back");
        filter.Started();
        health.LogError("started, the broker's listeners not yet up");
        filter.Ready();
        health.LogError("ready, then unhealthy");

        Assert.That(lines.Written, Is.EqualTo(new[] { "a warning is not held back", "ready, then unhealthy" }));
    }

    [Test]
    public void The_hosts_and_ef_cores_errors_are_held_back_until_the_host_has_started()
    {
        var (filter, ef, lines, services) = Filtered("Microsoft.EntityFrameworkCore.Database.Command");
        using var _ = services;

        ef.LogError("probing the history table");
        filter.Started();
        ef.LogError("a failed command after the start");

        Assert.That(lines.Written, Is.EqualTo(new[] { "a failed command after the start" }));
    }
}
