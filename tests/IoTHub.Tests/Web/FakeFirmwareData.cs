// An in-memory stand-in for the firmware pages' data (IFirmwareData), for looking at the pages before the Firmware
// module exists on this branch: one artifact in use, one free; a paused campaign halted by its failure threshold
// with a canary and three waves; a draft.
using IoTHub.Contracts;
using IoTHub.Web.Components.Pages.Firmware;

namespace IoTHub.Tests.Web;

internal sealed class FakeFirmwareData : IFirmwareData
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.UtcNow.AddHours(-3);
    private readonly List<ArtifactModel> _artifacts =
    [
        new(2, "1.4.0", "esp32-s3", "thermo", "Fixes the humidity drift after a cold start; faster Wi-Fi reconnects.", 1_572_864 + 4321,
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", true, "release-2026", T0.AddMinutes(30), "admin"),
        new(1, "1.3.2", null, null, null, 812_000, "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", false, null, T0, "alice"),
    ];

    private readonly List<CampaignModel> _campaigns = [];

    public FakeFirmwareData()
    {
        var definition = new CampaignDefinition("Thermostats 1.4.0", 2, new TargetModel(null, "floor-2", "thermo"), 1,
            [new WaveModel(10, 90, 600, false), new WaveModel(50, 95, 600, true), new WaveModel(100, 95, null, null)],
            new FailureThresholdModel(20, 5, "pause"), new TimeoutsModel(86400, 3600, 600, 1800, 900, 172800), new RetriesModel(2, 1, 0, 0),
            new MaintenanceWindowModel("Europe/Berlin", ["mon", "tue", "wed", "thu", "fri"], "01:00", "05:00"));
        _campaigns.Add(new CampaignModel(7, definition, "paused", 2, "1.4.0", 2,
            [new WaveStateModel(1, 1, 1, 0, 0, "passed"), new WaveStateModel(2, 4, 3, 1, 0, "passed"), new WaveStateModel(3, 20, 6, 4, 9, "running"), new WaveStateModel(4, 15, 0, 0, 0, "pending")],
            new FunnelModel(15, 2, 3, 1, 1, 2, 10, 3, 1, 1, 1), 3, 2,
            "6 of 21 finished devices failed (28 %), more than the failure threshold of 20 %: paused by itself.", T0.AddHours(1), T0.AddHours(1.1), null, "admin"));
        _campaigns.Add(new CampaignModel(8, definition with { Name = "Everything 1.3.2", ArtifactId = 1, Target = new TargetModel(["dev-a", "dev-b"], null, null), CanaryCount = null },
            "draft", 1, "1.3.2", null, [], new FunnelModel(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, 0, null, T0.AddHours(2), null, null, "alice"));
    }

    public Task<Page<ArtifactModel>> ListArtifactsAsync(string? cursor, CancellationToken ct = default) =>
        Task.FromResult(new Page<ArtifactModel>(_artifacts.ToList(), null));

    public Task<FirmwareResult> DeleteArtifactAsync(long id, string actor, CancellationToken ct = default)
    {
        if (_campaigns.Any(c => c.ArtifactId == id && c.State is "draft" or "running" or "paused"))
            return Task.FromResult(new FirmwareResult(FirmwareStatus.Conflict, "campaign 7 (paused) uses it"));
        return Task.FromResult(_artifacts.RemoveAll(a => a.Id == id) > 0 ? new FirmwareResult(FirmwareStatus.Ok) : new FirmwareResult(FirmwareStatus.NotFound));
    }

    public Task<FirmwareResult<PreviewModel>> PreviewAsync(CampaignDefinition definition, CancellationToken ct = default)
    {
        var total = 40;
        var waves = new List<WaveCount>();
        var wave = 1;
        var assigned = 0;
        if (definition.CanaryCount is { } canary)
        {
            waves.Add(new WaveCount(wave++, canary));
            assigned = canary;
        }
        var rest = total - assigned;
        var before = 0;
        foreach (var w in definition.Waves)
        {
            var upTo = (int)Math.Ceiling(rest * w.Percent / 100.0);
            waves.Add(new WaveCount(wave++, upTo - before));
            before = upTo;
        }
        return Task.FromResult(new FirmwareResult<PreviewModel>(FirmwareStatus.Ok, new PreviewModel(total, 3, 2, 0, waves)));
    }

    public Task<FirmwareResult<CampaignModel>> CreateCampaignAsync(CampaignDefinition definition, string actor, CancellationToken ct = default)
    {
        if (definition.Waves.Count == 0 || definition.Waves[^1].Percent != 100)
            return Task.FromResult(new FirmwareResult<CampaignModel>(FirmwareStatus.Invalid, Errors: new Dictionary<string, string> { ["waves"] = "the last wave must be 100" }));
        var c = new CampaignModel(_campaigns.Max(x => x.Id) + 1, definition, "draft", definition.ArtifactId,
            _artifacts.First(a => a.Id == definition.ArtifactId).Version, null, [], new FunnelModel(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, 0, null, DateTimeOffset.UtcNow, null, null, actor);
        _campaigns.Add(c);
        return Task.FromResult(new FirmwareResult<CampaignModel>(FirmwareStatus.Ok, c));
    }

    public Task<FirmwareResult<CampaignModel>> ActAsync(long id, CampaignAction action, string actor, CancellationToken ct = default)
    {
        var i = _campaigns.FindIndex(c => c.Id == id);
        if (i < 0) return Task.FromResult(new FirmwareResult<CampaignModel>(FirmwareStatus.NotFound));
        var c = _campaigns[i];
        string? next = (action, c.State) switch
        {
            (CampaignAction.Start, "draft") => "running",
            (CampaignAction.Pause, "running") => "paused",
            (CampaignAction.Resume, "paused") => "running",
            (CampaignAction.Abort, "running" or "paused") => "aborted",
            (CampaignAction.Approve, "running" or "paused") => c.State,
            _ => null,
        };
        if (next is null) return Task.FromResult(new FirmwareResult<CampaignModel>(FirmwareStatus.Conflict, Detail: $"the campaign is {c.State}"));
        _campaigns[i] = c = c with { State = next, HaltReason = next == "running" ? null : c.HaltReason, StartedAt = c.StartedAt ?? DateTimeOffset.UtcNow };
        return Task.FromResult(new FirmwareResult<CampaignModel>(FirmwareStatus.Ok, c));
    }

    public Task<FirmwareResult> DeleteCampaignAsync(long id, string actor, CancellationToken ct = default) =>
        Task.FromResult(_campaigns.RemoveAll(c => c.Id == id && c.State is "draft" or "completed" or "aborted") > 0
            ? new FirmwareResult(FirmwareStatus.Ok) : new FirmwareResult(FirmwareStatus.Conflict, "only a draft, completed or aborted campaign"));

    public Task<Page<CampaignModel>> ListCampaignsAsync(string? state, string? cursor, CancellationToken ct = default) =>
        Task.FromResult(new Page<CampaignModel>(_campaigns.Where(c => state is null || c.State == state).OrderByDescending(c => c.Id).ToList(), null));

    public Task<CampaignModel?> GetCampaignAsync(long id, CancellationToken ct = default) => Task.FromResult(_campaigns.FirstOrDefault(c => c.Id == id));

    public Task<Page<CampaignDeviceModel>?> ListCampaignDevicesAsync(long id, string? state, int? wave, string? cursor, CancellationToken ct = default)
    {
        if (_campaigns.All(c => c.Id != id)) return Task.FromResult<Page<CampaignDeviceModel>?>(null);
        if (id != 7) return Task.FromResult<Page<CampaignDeviceModel>?>(new Page<CampaignDeviceModel>([], null));
        var now = DateTimeOffset.UtcNow;
        List<CampaignDeviceModel> all =
        [
            new("thermo-canary-01", 1, "succeeded", 1_577_185, 1, null, null, "1.3.2", now.AddMinutes(-90), now.AddMinutes(-90)),
            new("thermo-floor2-kitchen-with-a-very-long-device-identifier-0042", 2, "failed", 1_200_000, 2, "checksum",
                "SHA-256 mismatch after download: expected 9f86d081…, got 1b4f0e98…", "1.3.2", now.AddMinutes(-30), now.AddMinutes(-30)),
            new("thermo-07", 3, "downloading", 524_288, 1, null, null, "1.3.2", now.AddSeconds(-20), null),
            new("thermo-08", 3, "timed-out", 0, 1, "notified", "no progress within 1 d", "1.3.1", now.AddMinutes(-5), now.AddMinutes(-5)),
            new("thermo-09", 4, "queued", null, 0, null, null, null, now.AddHours(-2), null),
        ];
        return Task.FromResult<Page<CampaignDeviceModel>?>(new Page<CampaignDeviceModel>(
            all.Where(d => (state is null || d.State == state) && (wave is null || d.Wave == wave)).ToList(), null));
    }

    public Task<DeviceFirmwareModel?> GetDeviceFirmwareAsync(string deviceId, CancellationToken ct = default) =>
        Task.FromResult<DeviceFirmwareModel?>(new DeviceFirmwareModel(deviceId, "1.3.2", "esp32-s3", DateTimeOffset.UtcNow.AddMinutes(-10),
        [
            new DeviceUpdateModel(7, "Thermostats 1.4.0", "1.4.0", "failed", "checksum", "SHA-256 mismatch", DateTimeOffset.UtcNow.AddMinutes(-30)),
            new DeviceUpdateModel(3, "Thermostats 1.3.2", "1.3.2", "succeeded", null, null, DateTimeOffset.UtcNow.AddDays(-12)),
        ]));
}
