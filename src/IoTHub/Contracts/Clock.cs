namespace IoTHub.Contracts;

/// <summary>Times as the store keeps them: Unix milliseconds (UTC), a <c>long</c>; the API shows them as ISO 8601 UTC.</summary>
public static class UnixTime
{
    /// <summary>Now, in Unix milliseconds, from the injected clock (so tests can move it).</summary>
    public static long NowMs(this TimeProvider time) => time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>A stored time as the API writes it: UTC, offset zero.</summary>
    public static DateTimeOffset ToDateTime(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);

    /// <summary>A stored time that may be absent (never seen, not yet ended): null stays null.</summary>
    public static DateTimeOffset? ToDateTime(long? ms) => ms is { } v ? DateTimeOffset.FromUnixTimeMilliseconds(v) : null;
}
