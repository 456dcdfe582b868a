// A start that fails half-way (here the HTTP port is taken, so Kestrel fails after every hosted service started) leaves
// background loops running. They must be stopped before the container goes: CI once printed an alarm tick's purge
// failing through a disposed logger factory under the one sentence, because the services were left running while the
// process tore the loggers down.
using System.Net;
using System.Net.Sockets;
using IoTHub.Aggregation;
using IoTHub.Alarms.Evaluation;
using IoTHub.Storage;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace IoTHub.Tests.Host;

public sealed class FailedStartTests
{
    /// <summary>A loop that uses the database as the hub's background services do, until it is stopped.</summary>
    private sealed class DatabaseLoop(IServiceScopeFactory scopes) : IHostedService
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly TaskCompletionSource _firstQuery = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private Task? _loop;

        public Exception? Failure { get; private set; }
        public bool Stopped { get; private set; }
        public Task FirstQuery => _firstQuery.Task;

        public Task StartAsync(CancellationToken ct)
        {
            _loop = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    try
                    {
                        await using var scope = scopes.CreateAsyncScope();
                        await scope.ServiceProvider.GetRequiredService<HubDb>().Database.ExecuteSqlRawAsync("SELECT 1");
                        _firstQuery.TrySetResult();
                    }
                    catch (Exception ex)
                    {
                        Failure ??= ex;
                        _firstQuery.TrySetResult();
                        return;
                    }
                    await Task.Yield();
                }
            });
            return Task.CompletedTask;
        }

        public async Task StopAsync(CancellationToken ct)
        {
            await _stop.CancelAsync();
            await _loop!;
            Stopped = true;
        }
    }

    [Test]
    public async Task When_the_host_has_stopped_no_stage_downstream_of_the_writer_is_still_running()
    {
        // The evaluator and the window tracker end after the writer completes their feed, which it does in its own
        // StopAsync, after theirs: the host's stop must still wait for them, or they run on into the disposal. Work
        // queued right before the stop (a thousand rule reloads, each a database read) keeps the evaluator busy past it.
        var data = Path.Combine(Path.GetTempPath(), "iothub-tests", Guid.NewGuid().ToString("N")[..12]);
        var app = HubApp.Build(["--DataDirectory=" + data, "--Bootstrap:AdminPassword=stop-order-password", "--Mqtt:Port=0",
            "--Coap:Port=0", "--Coap:DtlsPort=0", "--urls=http://127.0.0.1:0"]);
        await app.StartAsync();
        var evaluator = app.Services.GetRequiredService<AlarmEvaluator>();
        var tracker = app.Services.GetRequiredService<WindowTracker>();
        for (var i = 1; i <= 1000; i++) evaluator.OnRuleChanged(i);

        await app.StopAsync();

        Assert.That(evaluator.Completion.IsCompleted, Is.True, "the alarm evaluator's loop has ended");
        Assert.That(tracker.Completion.IsCompleted, Is.True, "the window tracker's loop has ended");
        await app.DisposeAsync();
        try { Directory.Delete(data, recursive: true); } catch (IOException) { }
    }

    [Test]
    public async Task Services_that_started_before_the_failure_are_stopped_before_the_container_is_disposed()
    {
        var data = Path.Combine(Path.GetTempPath(), "iothub-tests", Guid.NewGuid().ToString("N")[..12]);
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var app = HubApp.Build(["--DataDirectory=" + data, "--Bootstrap:AdminPassword=failed-start-password", "--Mqtt:Port=0",
            "--Coap:Port=0", "--Coap:DtlsPort=0", $"--urls=http://127.0.0.1:{port}"],
            b => b.Services.AddSingleton<DatabaseLoop>().AddHostedService(p => p.GetRequiredService<DatabaseLoop>()));
        var loop = app.Services.GetRequiredService<DatabaseLoop>();

        Assert.That(async () => await app.StartAsync(), Throws.InstanceOf<IOException>(), "the HTTP port is taken");
        await loop.FirstQuery.WaitAsync(TimeSpan.FromSeconds(10)); // running when the start failed
        await StartupFailure.StopStartedServicesAsync(app);

        Assert.That(loop.Stopped, Is.True, "stopped by the host before the process ends");
        Assert.That(loop.Failure, Is.Null, "never ran against a disposed container");
        try { Directory.Delete(data, recursive: true); } catch (IOException) { }
    }
}
