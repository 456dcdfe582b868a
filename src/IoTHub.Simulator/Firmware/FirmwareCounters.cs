// The fleet's firmware updates so far, for the progress line and the summary.
namespace IoTHub.Simulator.Firmware;

/// <summary>Counts the firmware updates of a run's devices; safe to bump from any thread.</summary>
public sealed class FirmwareCounters
{
    private long _notified;
    private long _succeeded;
    private long _failed;
    private long _rolledBack;
    private long _powerLosses;
    private long _busy;

    internal void Notified() => Interlocked.Increment(ref _notified);
    internal void Succeeded() => Interlocked.Increment(ref _succeeded);
    internal void Failed() => Interlocked.Increment(ref _failed);
    internal void RolledBack() => Interlocked.Increment(ref _rolledBack);
    internal void PowerLoss() => Interlocked.Increment(ref _powerLosses);
    internal void Busy(int times) => Interlocked.Add(ref _busy, times);

    /// <summary>The counts now.</summary>
    public FirmwareTally Snapshot() => new(Interlocked.Read(ref _notified), Interlocked.Read(ref _succeeded), Interlocked.Read(ref _failed),
        Interlocked.Read(ref _rolledBack), Interlocked.Read(ref _powerLosses), Interlocked.Read(ref _busy));
}

/// <summary>Firmware updates of a run at one moment.</summary>
/// <param name="Notified">Notifications taken (a campaign and attempt a device had not seen).</param>
/// <param name="Succeeded">Updates installed, after which the device rebooted onto the new version.</param>
/// <param name="Failed">Updates reported <c>failed</c> (download, checksum or install).</param>
/// <param name="RolledBack">Updates reported <c>succeeded</c> after which the device came back on its old version.</param>
/// <param name="PowerLosses">Downloads interrupted by a simulated power loss (and resumed).</param>
/// <param name="Busy">Times the hub answered a download with 503 (too many at once) and the device waited.</param>
public sealed record FirmwareTally(long Notified, long Succeeded, long Failed, long RolledBack, long PowerLosses, long Busy)
{
    /// <summary>Updates taken and not finished yet.</summary>
    public long Updating => Notified - Succeeded - Failed - RolledBack;

    public override string ToString() =>
        $"firmware: {Notified:N0} notified, {Updating:N0} updating, {Succeeded:N0} succeeded, {Failed:N0} failed, {RolledBack:N0} rolled back"
        + (PowerLosses > 0 ? $", {PowerLosses:N0} power losses" : "") + (Busy > 0 ? $", {Busy:N0} busy (503)" : "");
}
