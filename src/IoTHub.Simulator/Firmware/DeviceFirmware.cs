// One simulated device's side of a firmware update (docs/firmware.md, "The device's side"): it takes a notification
// from devices/{id}/firmware, downloads the image in ranges, checks its SHA-256, installs it, reports each step on
// devices/{id}/firmware/progress, then reboots (a new connection) and reports the new firmwareVersion, which is the
// proof the hub waits for.
using System.Text.Json.Nodes;
using MQTTnet;
using MQTTnet.Exceptions;
using MQTTnet.Protocol;

namespace IoTHub.Simulator.Firmware;

/// <summary>A device's firmware: the version it runs and the updates it takes.</summary>
public sealed class DeviceFirmware(DeviceLink link, SimDevice device, FirmwareFleet fleet)
{
    private readonly Lock _lock = new();
    // Campaign and attempt pairs taken: the notification is retained, so it comes again after every reconnect
    // (a power loss, the reboot) until the hub clears it.
    private readonly HashSet<(long Campaign, int Attempt)> _taken = [];
    // A device keeps its fate for a campaign across the hub's retries, so the shares hold per device.
    private readonly Dictionary<long, FirmwareFate> _fates = [];
    private readonly HashSet<long> _lostPower = [];
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);
    private volatile string _version = fleet.Options.InitialVersion;

    /// <summary>The version it runs, reported as <c>firmwareVersion</c> after each connect.</summary>
    public string Version => _version;

    /// <summary>The topic its notifications arrive on.</summary>
    public string Topic { get; } = $"devices/{device.Id}/firmware";

    /// <summary>Takes a message from <see cref="Topic"/>: starts the update off the receive handler, unless the message is
    /// empty (nothing to do) or names a campaign and attempt it has already taken.</summary>
    public void OnNotification(ReadOnlySpan<byte> payload)
    {
        if (FirmwareNotice.Parse(payload) is not { } notice) return;
        FirmwareFate fate;
        lock (_lock)
        {
            if (!_taken.Add((notice.CampaignId, notice.Attempt))) return;
            if (!_fates.TryGetValue(notice.CampaignId, out fate)) _fates[notice.CampaignId] = fate = fleet.Faults.Next();
        }
        fleet.Counters.Notified();
        // Off the receive handler: awaiting a PUBACK inside it would stall the client's packet loop.
        _ = Task.Run(() => UpdateAsync(notice, fate), CancellationToken.None);
    }

    private async Task UpdateAsync(FirmwareNotice notice, FirmwareFate fate)
    {
        var ct = fleet.Stop;
        try
        {
            await _oneAtATime.WaitAsync(ct);
            try
            {
                await InstallAsync(notice, fate, ct);
            }
            finally
            {
                _oneAtATime.Release();
            }
        }
        catch (Exception) when (ct.IsCancellationRequested)
        {
            // the run is over: whatever broke (a publish on a closed client, a disposed HTTP client) broke because of that
        }
    }

    private async Task InstallAsync(FirmwareNotice notice, FirmwareFate fate, CancellationToken ct)
    {
        if (fleet.ImageUrl(notice.Url) is not { } url)
        {
            await FailAsync(notice, "download", "the simulator has no hub URL (--url) to download from", ct);
            return;
        }
        using var download = new FirmwareDownload(fleet.Http, url, device.Token, notice.Size, fleet.Options.ChunkSize);
        var reported = DateTimeOffset.MinValue;
        async Task Progress(long bytes)
        {
            if (bytes < notice.Size && DateTimeOffset.UtcNow - reported < fleet.Options.ProgressInterval) return;
            reported = DateTimeOffset.UtcNow;
            await ReportAsync(Status(notice, "downloading", bytes), ct);
        }
        try
        {
            await Progress(0);
            if (fate.LosesPower && FirstPowerLoss(notice.CampaignId))
            {
                await download.FetchAsync(notice.Size / 2, Progress, ct);
                await LosePowerAsync(ct);
            }
            await download.FetchAsync(notice.Size, Progress, ct);
        }
        catch (FirmwareDownloadException ex)
        {
            await FailAsync(notice, "download", ex.Message, ct);
            return;
        }
        finally
        {
            fleet.Counters.Busy(download.Busy);
        }

        await ReportAsync(Status(notice, "verifying"), ct);
        if (download.Received != notice.Size || !string.Equals(download.Sha256, notice.Sha256, StringComparison.OrdinalIgnoreCase))
        {
            await FailAsync(notice, "checksum", $"received {download.Received} bytes with SHA-256 {download.Sha256}, expected {notice.Size} with {notice.Sha256}", ct);
            return;
        }
        await ReportAsync(Status(notice, "installing"), ct);
        await Task.Delay(fleet.Options.InstallTime, ct);
        if (fate.FailsInstall)
        {
            await FailAsync(notice, "install", "simulated install failure (--firmware-fail-rate)", ct);
            return;
        }
        await ReportAsync(Status(notice, "succeeded"), ct);
        if (fate.RollsBack) fleet.Counters.RolledBack();
        else
        {
            _version = notice.Version;
            fleet.Counters.Succeeded();
        }
        // Reboot: the link connects again, subscribes and reports firmwareVersion (the new one, or the old one after a
        // rollback).
        await link.RestartAsync(fleet.Options.OffTime, MqttClientDisconnectOptionsReason.NormalDisconnection);
    }

    private bool FirstPowerLoss(long campaignId)
    {
        lock (_lock) return _lostPower.Add(campaignId);
    }

    /// <summary>Drops the connection as a device losing power does (not a normal disconnect) and waits until it is back;
    /// the download keeps what it received.</summary>
    private async Task LosePowerAsync(CancellationToken ct)
    {
        fleet.Counters.PowerLoss();
        await link.RestartAsync(fleet.Options.OffTime, MqttClientDisconnectOptionsReason.DisconnectWithWillMessage);
        if (!await link.WaitUntilConnectedAsync(ct)) ct.ThrowIfCancellationRequested();
    }

    private async Task FailAsync(FirmwareNotice notice, string reason, string detail, CancellationToken ct)
    {
        var failed = Status(notice, "failed");
        failed["reason"] = reason;
        failed["detail"] = detail;
        await ReportAsync(failed, ct);
        fleet.Counters.Failed();
    }

    private static JsonObject Status(FirmwareNotice notice, string status, long? bytes = null)
    {
        var json = new JsonObject { ["campaignId"] = notice.CampaignId, ["status"] = status };
        if (bytes is { } b) json["bytes"] = b;
        return json;
    }

    /// <summary>Publishes a progress report, waiting for the connection when it is away: a report is sent again rather
    /// than lost, which is safe since the hub ignores one that does not move forward.</summary>
    private async Task ReportAsync(JsonObject progress, CancellationToken ct)
    {
        var message = new MqttApplicationMessageBuilder().WithTopic($"devices/{device.Id}/firmware/progress").WithPayload(progress.ToJsonString())
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build();
        while (true)
        {
            if (!await link.WaitUntilConnectedAsync(ct)) ct.ThrowIfCancellationRequested();
            try
            {
                await link.Client.PublishAsync(message, ct);
                return;
            }
            catch (MqttCommunicationException) when (!ct.IsCancellationRequested)
            {
                await Task.Delay(200, ct); // lost with the connection: send it again once the link is back
            }
        }
    }
}
