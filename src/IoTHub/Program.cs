// The process. `IoTHub --health-check [url]` probes a running hub (the container's HEALTHCHECK) and exits 0 when it is
// ready. Otherwise it runs the hub; a start-up failure it can explain is one sentence on stderr and exit code 1.
using IoTHub;

if (HealthProbe.IsRequested(args)) return await HealthProbe.RunAsync(args);

var settings = StartupFailure.ReadSettings(args);
if (StartupFailure.CheckDataDirectory(settings) is { } unwritable) return Fail(unwritable);

WebApplication app;
try
{
    app = HubApp.Build(args);
}
catch (Exception ex)
{
    return Fail(StartupFailure.Explain(ex, settings), ex);
}

try
{
    await app.StartAsync();
}
catch (OperationCanceledException) when (app.Lifetime.ApplicationStopping.IsCancellationRequested)
{
    Console.WriteLine("IoTHub was stopped while it was starting."); // Ctrl+C or SIGTERM during the start
    return 0;
}
catch (Exception ex)
{
    // The host is not disposed: that would cancel the services that did start without stopping them, and the generic
    // host logs each cancelled background service as a failure, stack trace and all. The process ends here anyway;
    // disposing the loggers writes out what they still hold.
    app.Services.GetRequiredService<ILoggerFactory>().Dispose();
    return Fail(StartupFailure.Explain(ex, settings), ex);
}

await app.WaitForShutdownAsync();
await app.DisposeAsync();
return Environment.ExitCode;

// One sentence when the failure is understood; the whole exception when it is not (that is a bug to report).
static int Fail(string? sentence, Exception? ex = null)
{
    Console.Out.Flush();
    Console.Error.WriteLine(sentence ?? $"IoTHub cannot start: {ex}");
    return 1;
}
