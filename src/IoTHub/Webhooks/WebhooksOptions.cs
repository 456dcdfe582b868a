using System.ComponentModel.DataAnnotations;

namespace IoTHub.Webhooks;

/// <summary>Section <c>Webhooks</c>: how events leave the hub (env <c>IOTHUB_Webhooks__...</c>). Times are
/// <c>TimeSpan</c>s (<c>"00:00:05"</c>, <c>"1.00:00:00"</c>).</summary>
public sealed class WebhooksOptions
{
    /// <summary>The configuration section.</summary>
    public const string SectionName = "Webhooks";

    /// <summary>False (the default): endpoints on loopback, link-local, private (RFC 1918, RFC 4193), CGNAT
    /// (100.64.0.0/10), unspecified and multicast addresses are refused, when created (literal addresses and
    /// <c>localhost</c>) and at every send (each address the name resolves to), so a webhook cannot reach the hub's own
    /// network. True allows them (a receiver on the same machine or LAN).</summary>
    public bool AllowPrivateNetworks { get; set; }

    /// <summary>How long one attempt may take, connection included, before it counts as failed and is retried
    /// (1 s to 5 min; default 15 s). Receivers should answer at once and work afterwards.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:05:00")]
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Delay before the first retry (default 5 s); each further one is <see cref="RetryBackoffFactor"/> times
    /// longer, up to <see cref="RetryMaxDelay"/>, each with ±20 % jitter: 5 s, 30 s, 3 min, 18 min, 1.8 h, 6 h, 6 h ...</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "1.00:00:00")]
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Growth of the delay from one retry to the next (1 to 100; default 6).</summary>
    [Range(1.0, 100.0)]
    public double RetryBackoffFactor { get; set; } = 6;

    /// <summary>Longest delay between two attempts, and the most a receiver's <c>Retry-After</c> is honoured (default 6 h).</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "1.00:00:00")]
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromHours(6);

    /// <summary>A delivery is retried until this long after it was created, then marked failed (default 1 day; up to 7).</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "7.00:00:00")]
    public TimeSpan RetryWindow { get; set; } = TimeSpan.FromDays(1);

    /// <summary>An endpoint whose every attempt failed for this long is disabled, logged, and announced with
    /// <c>WebhookEndpointDisabled</c> (default 1 day).</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "30.00:00:00")]
    public TimeSpan DisableAfter { get; set; } = TimeSpan.FromDays(1);

    /// <summary>After a secret rotation, the old secret also signs deliveries for this long (a second <c>v1,</c>
    /// signature in <c>webhook-signature</c>), so receivers can switch without losing any; 0 stops it at once (default 1 day).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "7.00:00:00")]
    public TimeSpan SecretRotationGrace { get; set; } = TimeSpan.FromDays(1);

    /// <summary>Attempts in flight over all endpoints (1 to 1000; default 32).</summary>
    [Range(1, 1000)]
    public int MaxConcurrentDeliveries { get; set; } = 32;

    /// <summary>Attempts in flight to one endpoint (1 to 100; default 4): a slow or dead receiver holds at most this
    /// many of <see cref="MaxConcurrentDeliveries"/>, so the others are not held up.</summary>
    [Range(1, 100)]
    public int MaxInFlightPerEndpoint { get; set; } = 4;

    /// <summary>How often the outbox and the due deliveries are looked at when nothing wakes the dispatcher (a commit
    /// in this process does at once; another hub instance's does not): default 5 s.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Delivery log rows and dispatched outbox messages older than this are deleted (default 30 days): a replay
    /// reaches back this far.</summary>
    [Range(typeof(TimeSpan), "01:00:00", "3650.00:00:00")]
    public TimeSpan LogRetention { get; set; } = TimeSpan.FromDays(30);
}
