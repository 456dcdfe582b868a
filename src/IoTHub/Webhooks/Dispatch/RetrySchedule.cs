// When a failed delivery is tried again. Exponential back-off with jitter (so a receiver that comes back is not hit by
// every hub's retries in the same second), a receiver's Retry-After as a floor, and a window after which the delivery
// is given up. The schedule is written into the delivery row, so it survives restarts.
namespace IoTHub.Webhooks.Dispatch;

/// <summary>The retry policy of <see cref="WebhooksOptions"/>, as a pure function of the attempt number.</summary>
internal sealed class RetrySchedule(WebhooksOptions options, Func<double> random)
{
    /// <summary>The delay after failed attempt <paramref name="attempt"/> (1 = the first), before jitter.</summary>
    public TimeSpan BaseDelay(int attempt)
    {
        var ms = options.RetryBaseDelay.TotalMilliseconds * Math.Pow(options.RetryBackoffFactor, Math.Min(attempt - 1, 64));
        return TimeSpan.FromMilliseconds(Math.Min(ms, options.RetryMaxDelay.TotalMilliseconds));
    }

    /// <summary>When to try again after failed attempt <paramref name="attempt"/> at <paramref name="now"/>: a last attempt
    /// falls at the end of <see cref="WebhooksOptions.RetryWindow"/> from <paramref name="createdAt"/>; null once that passed.</summary>
    /// <param name="attempt">The attempt that failed, 1 = the first.</param>
    /// <param name="createdAt">When the delivery was created: the window counts from here.</param>
    /// <param name="now">When the attempt failed.</param>
    /// <param name="retryAfter">The receiver's <c>Retry-After</c>, if any: the next attempt is no sooner (capped at
    /// <see cref="WebhooksOptions.RetryMaxDelay"/>).</param>
    public DateTimeOffset? Next(int attempt, DateTimeOffset createdAt, DateTimeOffset now, TimeSpan? retryAfter)
    {
        var delay = BaseDelay(attempt) * (0.8 + 0.4 * random());
        if (retryAfter is { } floor && floor > delay) delay = floor < options.RetryMaxDelay ? floor : options.RetryMaxDelay;
        var deadline = createdAt + options.RetryWindow;
        if (now >= deadline) return null;
        var next = now + delay;
        return next > deadline ? deadline : next;
    }
}
