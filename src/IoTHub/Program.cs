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
    await StartupFailure.StopStartedServicesAsync(app); // as below: what started is stopped before the container goes
    Console.WriteLine("IoTHub was stopped while it was starting."); // Ctrl+C or SIGTERM during the start
    return 0;
}
catch (Exception ex)
{
    // The services that did start are stopped, in order, before anything is disposed: left running, their loops go on
    // working against a container that is being torn down and log each failure (an alarm tick purging through a
    // disposed logger factory did). What the stop itself logs as a failure is the host's to say; the sentence is ours.
    await StartupFailure.StopStartedServicesAsync(app);
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
