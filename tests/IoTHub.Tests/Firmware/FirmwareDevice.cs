// A device that takes firmware updates the way docs/firmware.md says a device does, over a real MQTT connection and
// real HTTP range requests: it reports its version on every connect, downloads in ranges, checks the SHA-256,
// installs, says it succeeded, reconnects and reports the version it came back on. Each behaviour is one of the
// field's failures, so a test can make a fleet misbehave exactly as it needs.
using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Firmware;

public enum FirmwareBehaviour
{
    /// <summary>Updates and comes back on the new version.</summary>
    Good,
    /// <summary>Fails to install (reports failed, reason install).</summary>
    FailInstall,
    /// <summary>Says it succeeded, comes back on its old version (an A/B fallback).</summary>
    RollBack,
    /// <summary>Never answers a notification.</summary>
    Silent,
    /// <summary>Its download is corrupted (one byte flipped): the checksum does not match.</summary>
    Corrupt,
    /// <summary>Loses power after the first range, reconnects, and resumes the download where it stopped.</summary>
    PowerLoss,
}

public sealed class FirmwareDevice : IAsyncDisposable
{
    private readonly HubHost _hub;
    private readonly string _token;
    private readonly HttpClient _http;
    private readonly HashSet<(long, int)> _handled = [];
    private IMqttClient _client = null!;

    public string Id { get; }
    public FirmwareBehaviour Behaviour { get; set; }
    public string Version { get; private set; }
    public int ChunkBytes { get; set; } = 4096;
    public ConcurrentQueue<JsonNode> Notifications { get; } = new();
    public ConcurrentQueue<string> RangesRequested { get; } = new();
    public int Connections;

    private FirmwareDevice(HubHost hub, string id, string token, string version, FirmwareBehaviour behaviour)
    {
        _hub = hub;
        Id = id;
        _token = token;
        Version = version;
        Behaviour = behaviour;
        _http = hub.WithBearer(token);
    }

    public static async Task<FirmwareDevice> ConnectAsync(HubHost hub, string id, string token, string version = "1.0.0",
        FirmwareBehaviour behaviour = FirmwareBehaviour.Good)
    {
        var device = new FirmwareDevice(hub, id, token, version, behaviour);
        await device.ConnectAsync();
        return device;
    }

    private async Task ConnectAsync()
    {
        _client = new MqttClientFactory().CreateMqttClient();
        _client.ApplicationMessageReceivedAsync += e =>
        {
            if (e.ApplicationMessage.Payload.Length == 0) return Task.CompletedTask;
            var body = JsonNode.Parse(Encoding.UTF8.GetString(e.ApplicationMessage.Payload))!;
            Notifications.Enqueue(body);
            var key = (body["campaignId"]!.GetValue<long>(), body["attempt"]!.GetValue<int>());
            lock (_handled)
                if (!_handled.Add(key)) return Task.CompletedTask; // the retained message again after a reconnect
            // Off the receive handler: awaiting our own PUBACKs inside it would stall the client's packet loop.
            _ = Task.Run(() => UpdateAsync(body));
            return Task.CompletedTask;
        };
        var result = await _client.ConnectAsync(_hub.MqttOptions(Id, _token));
        Assert.That(result.ResultCode, Is.EqualTo(MqttClientConnectResultCode.Success));
        Interlocked.Increment(ref Connections);
        await ReportAsync(new JsonObject { ["firmwareVersion"] = Version, ["hardwareModel"] = "m1" });
        await _client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder().WithTopicFilter($"devices/{Id}/firmware", MqttQualityOfServiceLevel.AtLeastOnce).Build());
    }

    private async Task ReconnectAsync()
    {
        var old = _client;
        await old.DisconnectAsync();
        old.Dispose();
        await ConnectAsync();
    }

    private Task ReportAsync(JsonObject reported) => _client.PublishAsync(new MqttApplicationMessageBuilder()
        .WithTopic($"devices/{Id}/state/reported").WithPayload(reported.ToJsonString()).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());

    public Task ProgressAsync(JsonObject report) => _client.PublishAsync(new MqttApplicationMessageBuilder()
        .WithTopic($"devices/{Id}/firmware/progress").WithPayload(report.ToJsonString()).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());

    private Task ProgressAsync(long campaignId, string status, long? bytes = null, string? reason = null, string? detail = null) =>
        ProgressAsync(new JsonObject { ["campaignId"] = campaignId, ["status"] = status, ["bytes"] = bytes, ["reason"] = reason, ["detail"] = detail });

    private async Task UpdateAsync(JsonNode n)
    {
        try
        {
            if (Behaviour == FirmwareBehaviour.Silent) return;
            var campaign = n["campaignId"]!.GetValue<long>();
            var version = n["version"]!.GetValue<string>();
            var size = n["size"]!.GetValue<long>();
            await ProgressAsync(campaign, "downloading", 0);
            var image = new MemoryStream();
            string? etag = null;
            while (image.Length < size)
            {
                var from = image.Length;
                var to = Math.Min(size, from + ChunkBytes) - 1;
                using var request = new HttpRequestMessage(HttpMethod.Get, n["url"]!.GetValue<string>());
                request.Headers.Range = new RangeHeaderValue(from, to);
                if (etag is not null) request.Headers.IfRange = new RangeConditionHeaderValue(new EntityTagHeaderValue(etag));
                RangesRequested.Enqueue($"{from}-{to}");
                using var response = await _http.SendAsync(request);
                if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
                {
                    await Task.Delay(100);
                    continue;
                }
                Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.PartialContent), $"range {from}-{to} of {Id}");
                etag = response.Headers.ETag?.Tag;
                await (await response.Content.ReadAsStreamAsync()).CopyToAsync(image);
                await ProgressAsync(campaign, "downloading", image.Length);
                if (Behaviour == FirmwareBehaviour.PowerLoss && from == 0)
                {
                    Behaviour = FirmwareBehaviour.Good;
                    await ReconnectAsync(); // the bytes it has are kept (flash); the next range starts after them
                }
            }
            await ProgressAsync(campaign, "verifying");
            var bytes = image.ToArray();
            if (Behaviour == FirmwareBehaviour.Corrupt) bytes[bytes.Length / 2] ^= 0xFF;
            if (Convert.ToHexStringLower(SHA256.HashData(bytes)) != n["sha256"]!.GetValue<string>())
            {
                await ProgressAsync(campaign, "failed", reason: "checksum", detail: "SHA-256 mismatch");
                return;
            }
            await ProgressAsync(campaign, "installing");
            if (Behaviour == FirmwareBehaviour.FailInstall)
            {
                await ProgressAsync(campaign, "failed", reason: "install", detail: "flash write error");
                return;
            }
            await ProgressAsync(campaign, "succeeded");
            if (Behaviour != FirmwareBehaviour.RollBack) Version = version;
            await ReconnectAsync(); // the reboot: it comes back and reports what it runs
        }
        catch (Exception e) when (e is not AssertionException)
        {
            TestContext.Progress.WriteLine($"firmware device {Id}: {e.Message}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        try { await _client.DisconnectAsync(); } catch (Exception) { }
        _client.Dispose();
        _http.Dispose();
    }
}
