namespace IoTHub.Tests.Infrastructure;

/// <summary>How much earlier than a <see cref="System.Diagnostics.Stopwatch"/> says a real-time wait of the hub
/// (<c>Task.Delay</c>, a timer) may end. .NET's timers count <c>Environment.TickCount64</c>, which on Linux reads
/// <c>CLOCK_MONOTONIC_COARSE</c>: it advances a kernel tick at a time (4 ms at this machine's 250 Hz), so a wait
/// can end up to a tick before its due time by a fine clock. CI once measured 396.75 ms for a wait of 400 ms.</summary>
public static class TimerSlack
{
    /// <summary>A kernel tick of 4 ms (CONFIG_HZ=250, Debian's default) plus a millisecond of rounding.</summary>
    public const double Milliseconds = 5;
}
