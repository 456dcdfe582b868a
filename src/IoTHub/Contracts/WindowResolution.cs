namespace IoTHub.Contracts;

/// <summary>The three tumbling-window resolutions of rollups and window events, in one place for every module:
/// index 0 = 1 minute, 1 = 1 hour, 2 = 1 day, on UTC boundaries counted from the Unix epoch.</summary>
public static class WindowResolution
{
    /// <summary>Window widths in milliseconds, by resolution index.</summary>
    public static readonly long[] WidthsMs = [60_000, 3_600_000, 86_400_000];

    /// <summary>The API's names of the resolutions, by index.</summary>
    public static readonly string[] Names = ["1m", "1h", "1d"];

    /// <summary>The start (Unix ms) of the window of <paramref name="resolution"/> holding <paramref name="tsMs"/>: the
    /// floor to a multiple of the width, also before 1970 (C#'s % would round those toward zero, into the wrong window).</summary>
    public static long BucketOf(long tsMs, int resolution)
    {
        var width = WidthsMs[resolution];
        return tsMs - (((tsMs % width) + width) % width);
    }
}
