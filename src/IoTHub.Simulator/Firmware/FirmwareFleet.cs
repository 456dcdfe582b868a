// What all devices of one run share for firmware updates.
namespace IoTHub.Simulator.Firmware;

/// <summary>What a run's devices share for firmware updates: the options, one HTTP client to the hub, the fault plan
/// (so the shares hold over the fleet) and the counters.</summary>
public sealed class FirmwareFleet : IDisposable
{
    /// <param name="options">How devices update and which faults they show.</param>
    /// <param name="hub">The hub's HTTP address, which notification URLs are relative to; null when there is none
    /// (then every download fails).</param>
    /// <param name="stop">Ends updates in progress when the run stops.</param>
    public FirmwareFleet(FirmwareOptions options, Uri? hub, CancellationToken stop)
    {
        Options = options;
        Hub = hub;
        Stop = stop;
        Faults = new FirmwareFaults(options);
        Http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) }) { Timeout = TimeSpan.FromSeconds(60) };
    }

    /// <summary>How devices update and which faults they show.</summary>
    public FirmwareOptions Options { get; }

    /// <summary>The hub's HTTP address, or null.</summary>
    public Uri? Hub { get; }

    /// <summary>Ends updates in progress.</summary>
    public CancellationToken Stop { get; }

    /// <summary>Who fails, rolls back or loses power.</summary>
    public FirmwareFaults Faults { get; }

    /// <summary>The run's firmware counts.</summary>
    public FirmwareCounters Counters { get; } = new();

    /// <summary>The client every device downloads with.</summary>
    public HttpClient Http { get; }

    /// <summary>The image's address: the hub's address with the notification's path appended (kept as given when it is
    /// absolute), so a hub behind a path prefix works too.</summary>
    public Uri? ImageUrl(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var absolute) && absolute.Scheme.StartsWith("http", StringComparison.Ordinal) ? absolute
        : Hub is null ? null : new Uri(Hub.ToString().TrimEnd('/') + "/" + url.TrimStart('/'));

    public void Dispose() => Http.Dispose();
}
