using System.Diagnostics.Metrics;
using IoTHub.Contracts;

namespace IoTHub.Webhooks.Dispatch;

/// <summary>The module's instruments on <see cref="HubMeter"/>.</summary>
internal sealed class WebhookMetrics
{
    private readonly Counter<long> _attempts = HubMeter.Meter.CreateCounter<long>("iothub_webhook_deliveries_total",
        description: "Delivery attempts by outcome: succeeded, retrying (failed, will be tried again), failed (given up)");
    private long _oldestUndispatched = -1;

    public WebhookMetrics(TimeProvider time)
    {
        HubMeter.Meter.CreateObservableGauge("iothub_webhook_outbox_lag_seconds", () =>
            {
                var oldest = Interlocked.Read(ref _oldestUndispatched);
                return oldest < 0 ? 0 : Math.Max(0, (time.GetUtcNow().ToUnixTimeMilliseconds() - oldest) / 1000.0);
            }, unit: "s", description: "Age of the oldest outbox message not yet fanned out to the endpoints (0 when none waits)");
    }

    public void Attempted(string outcome) => _attempts.Add(1, new KeyValuePair<string, object?>("outcome", outcome));

    /// <summary>What the dispatcher last saw: the oldest waiting message's time (Unix ms), or null when none waits.</summary>
    public void OldestUndispatched(long? at) => Interlocked.Exchange(ref _oldestUndispatched, at ?? -1);
}

/// <summary>Wakes the delivery worker when deliveries are added or a slot frees up; cheap, never blocks.</summary>
internal sealed class DeliverySignal
{
    private readonly SemaphoreSlim _signal = new(0, 1);

    public void Set()
    {
        if (_signal.CurrentCount == 0) try { _signal.Release(); } catch (SemaphoreFullException) { }
    }

    public Task WaitAsync(TimeSpan timeout, CancellationToken ct) => _signal.WaitAsync(timeout, ct);
}
