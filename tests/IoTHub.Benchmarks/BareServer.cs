// The "bare MQTTnet" contender: an MQTTnet server with no processing at all (no authentication, validation or store),
// started as its own process with the hub's runtime settings (server GC, no thread-pool spinning), so that it is
// measured the way the hub is: apart from the load generator.
using System.Diagnostics;
using System.Net;
using MQTTnet.Server;

namespace IoTHub.Benchmarks;

internal sealed class BareServer : IAsyncDisposable
{
    private const string Ready = "bare MQTTnet server listening";
    private readonly Process _process;

    private BareServer(Process process) => _process = process;

    public int Pid => _process.Id;

    /// <summary>In the child process: serves until killed.</summary>
    public static async Task<int> RunAsync(int port)
    {
        var server = new MqttServerFactory().CreateMqttServer(new MqttServerOptionsBuilder().WithDefaultEndpoint().WithDefaultEndpointPort(port)
            .WithDefaultEndpointBoundIPAddress(IPAddress.Loopback).Build());
        await server.StartAsync();
        Console.WriteLine(Ready);
        await Task.Delay(Timeout.Infinite);
        return 0;
    }

    public static async Task<BareServer> StartAsync(int port)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { typeof(BareServer).Assembly.Location, "bare-server", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture) })
            psi.ArgumentList.Add(a);
        // The hub's runtimeconfig settings (IoTHub.csproj), as environment for this process.
        psi.Environment["DOTNET_gcServer"] = "1";
        psi.Environment["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"] = "0";
        psi.Environment["DOTNET_TieredPGO"] = "0";
        var process = Process.Start(psi)!;
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) => { if (e.Data == Ready) ready.TrySetResult(); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 } line) Console.Error.WriteLine("  bare: " + line); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new BareServer(process);
        try
        {
            await ready.Task.WaitAsync(TimeSpan.FromSeconds(30));
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
