// Drives the rollouts: a pass every Firmware:TickInterval on the injected TimeProvider, and at once when something
// changed (a start, a resume, a device that finished). One loop, so passes never overlap.
using IoTHub.Contracts;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using IoTHub.Storage;

namespace IoTHub.Firmware.Rollout;

/// <summary>Wakes the runner before its next tick; cheap, never blocks.</summary>
internal sealed class RolloutSignal
{
    private readonly SemaphoreSlim _signal = new(0, 1);

    public void Wake()
    {
        if (_signal.CurrentCount == 0) try { _signal.Release(); } catch (SemaphoreFullException) { }
    }

    /// <summary>Until <see cref="Wake"/> or <paramref name="timeout"/> on <paramref name="time"/>, whichever is first. The wait
    /// that lost is withdrawn: left pending, it would take the next <see cref="Wake"/> (one more such waiter every tick, so
    /// after the first tick no wake reached the loop, and they piled up).</summary>
    public async Task WaitAsync(TimeSpan timeout, TimeProvider time, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        await Task.WhenAny(_signal.WaitAsync(cts.Token), Task.Delay(timeout, time, cts.Token));
        await cts.CancelAsync();
    }
}

/// <summary>The devices whose update waits for a reconnection (installing or rebooting): only their connections cost a
/// database write, not every device's.</summary>
internal sealed class InstallWatch
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _devices = new(StringComparer.Ordinal);

    public bool Watches(string deviceId) => _devices.ContainsKey(deviceId);

    public void Track(string deviceId, bool watch)
    {
        if (watch) _devices[deviceId] = 0;
        else _devices.TryRemove(deviceId, out _);
    }
}

internal sealed class CampaignRunner(IServiceScopeFactory scopes, RolloutSignal signal, InstallWatch watch, TimeProvider time, IJobLeadership leadership,
    IOptions<FirmwareOptions> options, ILogger<CampaignRunner> log) : BackgroundService
{
    private long _lastFailureLog = long.MinValue;
    private int _failures;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await LoadWatchAsync(stoppingToken);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (leadership.IsLeader) // one node drives the campaigns when several share the database
                {
                    await using var scope = scopes.CreateAsyncScope();
                    await scope.ServiceProvider.GetRequiredService<Rollouts>().DriveAsync(stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // Once a minute at most while the database is away, with how many passes failed meanwhile.
                _failures++;
                if (time.GetTimestamp() - _lastFailureLog > time.TimestampFrequency * 60 || _lastFailureLog == long.MinValue)
                {
                    log.LogWarning(ex, "Driving firmware campaigns failed ({Failures} passes since the last report); trying again at each tick", _failures);
                    _lastFailureLog = time.GetTimestamp();
                    _failures = 0;
                }
            }
            try { await signal.WaitAsync(options.Value.TickInterval, time, stoppingToken); }
            catch (OperationCanceledException) { return; }
        }
    }

    private async Task LoadWatchAsync(CancellationToken ct)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<HubDb>();
            foreach (var id in await db.Set<CampaignDevice>().Where(e => e.Active == 1
                         && (e.State == DeviceUpdateStates.Installing || e.State == DeviceUpdateStates.Rebooting)).Select(e => e.DeviceId).ToListAsync(ct))
                watch.Track(id, true);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            log.LogWarning(ex, "Could not load the devices that are installing firmware");
        }
    }
}
