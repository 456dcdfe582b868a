// The rules of one device's update (docs/firmware.md, "The device's side") as fast specifications over a row, without a
// hub: progress moves only forward, failures are retried while their kind has retries left, steps time out, success
// needs proof by a version reported on a connection after the install, and a device's report is parsed without ever
// throwing, whatever it sends.
using System.Text;
using IoTHub.Firmware;
using IoTHub.Firmware.Campaigns;
using IoTHub.Firmware.Rollout;

namespace IoTHub.Tests.Firmware;

public sealed class UpdateRulesSpecs
{
    private const long T0 = 1_700_000_000_000;
    private const long Second = 1000;
    private const long Campaign = 7;
    private const string Target = "2.0.0";

    private static CampaignDefinition Definition(StepTimeouts? timeouts = null, FailureRetries? retries = null) =>
        new CampaignDefinition("spec", 1, new CampaignTarget(["d"], null, null), null, null, null, timeouts, retries, null).Normalized();

    /// <summary>A row as the rollout leaves it when it notifies the device at <see cref="T0"/>.</summary>
    private static CampaignDevice Notified(CampaignDefinition def)
    {
        var d = new CampaignDevice
        {
            CampaignId = Campaign, DeviceId = "d", Wave = 1, State = DeviceUpdateStates.Notified, Active = 1, Attempt = 1, NotifiedAt = T0, StateSince = T0,
            UpdatedAt = T0,
        };
        d.Deadline = UpdateRules.DeadlineOf(d, def.Timeouts!);
        return d;
    }

    private static ProgressReport Report(string status, long? bytes = null, string? reason = null, string? detail = null) =>
        new(Campaign, status, bytes, reason, detail);

    /// <summary>A row that has reached <paramref name="state"/> through the device's own reports, one second apart.</summary>
    private static CampaignDevice At(string state, CampaignDefinition def)
    {
        var d = Notified(def);
        var now = T0;
        foreach (var step in new[] { "downloading", "verifying", "installing", "rebooting" })
        {
            if (DeviceUpdateStates.Rank(d.State) >= DeviceUpdateStates.Rank(state)) break;
            now += Second;
            Assert.That(UpdateRules.Apply(d, Report(step == "rebooting" ? "succeeded" : step), def, now), Is.EqualTo(UpdateChange.Moved));
        }
        Assert.That(d.State, Is.EqualTo(state));
        return d;
    }

    // ---- progress ------------------------------------------------------------------------------------------------

    [Test]
    public void Progress_moves_only_forward_an_older_status_changes_nothing()
    {
        var def = Definition();
        var d = At(DeviceUpdateStates.Verifying, def);
        var before = (d.State, d.StateSince, d.Deadline, d.UpdatedAt);

        Assert.That(UpdateRules.Apply(d, Report("downloading", 100), def, T0 + 60 * Second), Is.EqualTo(UpdateChange.None));
        Assert.That((d.State, d.StateSince, d.Deadline, d.UpdatedAt), Is.EqualTo(before));

        Assert.That(UpdateRules.Apply(d, Report("installing"), def, T0 + 61 * Second), Is.EqualTo(UpdateChange.Moved));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Installing));
        Assert.That(d.StateSince, Is.EqualTo(T0 + 61 * Second));
        Assert.That(d.InstallingSince, Is.EqualTo(T0 + 61 * Second));
    }

    [Test]
    public void A_device_may_skip_steps_forward()
    {
        var def = Definition();
        var d = Notified(def);
        Assert.That(UpdateRules.Apply(d, Report("installing"), def, T0 + Second), Is.EqualTo(UpdateChange.Moved));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Installing));
    }

    [TestCase("downloading")]
    [TestCase("verifying")]
    [TestCase("installing")]
    [TestCase("succeeded")]
    public void A_resent_report_changes_nothing(string status)
    {
        var def = Definition();
        var d = Notified(def);
        Assert.That(UpdateRules.Apply(d, Report(status, status == "downloading" ? 0 : null), def, T0 + Second), Is.EqualTo(UpdateChange.Moved));
        var before = (d.State, d.StateSince, d.Deadline, d.UpdatedAt, d.Bytes, d.InstallingSince);

        Assert.That(UpdateRules.Apply(d, Report(status, status == "downloading" ? 0 : null), def, T0 + 5 * Second), Is.EqualTo(UpdateChange.None));
        Assert.That((d.State, d.StateSince, d.Deadline, d.UpdatedAt, d.Bytes, d.InstallingSince), Is.EqualTo(before));
    }

    [Test]
    public void Bytes_grow_within_downloading_and_never_shrink()
    {
        var def = Definition();
        var d = Notified(def);
        Assert.That(UpdateRules.Apply(d, Report("downloading", 0), def, T0 + Second), Is.EqualTo(UpdateChange.Moved));
        var since = d.StateSince;

        Assert.That(UpdateRules.Apply(d, Report("downloading", 4096), def, T0 + 2 * Second), Is.EqualTo(UpdateChange.Moved));
        Assert.That(d.Bytes, Is.EqualTo(4096));
        Assert.That(d.UpdatedAt, Is.EqualTo(T0 + 2 * Second));
        Assert.That(d.StateSince, Is.EqualTo(since), "more bytes are progress within the step, not a new step");

        Assert.That(UpdateRules.Apply(d, Report("downloading", 2048), def, T0 + 3 * Second), Is.EqualTo(UpdateChange.None), "an older byte count");
        Assert.That(UpdateRules.Apply(d, Report("downloading", 4096), def, T0 + 3 * Second), Is.EqualTo(UpdateChange.None), "the same byte count");
        Assert.That(UpdateRules.Apply(d, Report("downloading"), def, T0 + 3 * Second), Is.EqualTo(UpdateChange.None), "no byte count");
        Assert.That(d.Bytes, Is.EqualTo(4096));
    }

    [Test]
    public void Succeeded_means_rebooting_until_the_device_proves_it()
    {
        var def = Definition();
        var d = At(DeviceUpdateStates.Installing, def);
        Assert.That(UpdateRules.Apply(d, Report("succeeded"), def, T0 + 10 * Second), Is.EqualTo(UpdateChange.Moved));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Rebooting));
        Assert.That(d.Active, Is.EqualTo(1), "still in the campaign");
        Assert.That(d.FinishedAt, Is.Null);
        Assert.That(d.Deadline, Is.EqualTo(T0 + 10 * Second + def.Timeouts!.RebootingSeconds!.Value * Second));
    }

    [Test]
    public void A_report_to_a_queued_or_finished_row_changes_nothing()
    {
        var def = Definition();
        var queued = new CampaignDevice { CampaignId = Campaign, DeviceId = "d", State = DeviceUpdateStates.Queued, StateSince = T0 };
        Assert.That(UpdateRules.Apply(queued, Report("downloading", 10), def, T0 + Second), Is.EqualTo(UpdateChange.None));
        Assert.That(queued.State, Is.EqualTo(DeviceUpdateStates.Queued));

        var done = At(DeviceUpdateStates.Installing, def);
        Assert.That(UpdateRules.Apply(done, Report("rejected"), def, T0 + 10 * Second), Is.EqualTo(UpdateChange.Finished));
        foreach (var status in UpdateRules.Statuses)
            Assert.That(UpdateRules.Apply(done, Report(status, 1, status == "failed" ? "install" : null), def, T0 + 20 * Second), Is.EqualTo(UpdateChange.None), status);
        Assert.That(done.State, Is.EqualTo(DeviceUpdateStates.Rejected));
    }

    // ---- failures and retries ------------------------------------------------------------------------------------------

    [Test]
    public void A_failure_with_retries_left_notifies_the_device_again_as_a_new_attempt()
    {
        var def = Definition(retries: new FailureRetries(1, null, null, null));
        var d = Notified(def);
        UpdateRules.Apply(d, Report("downloading", 8192), def, T0 + Second);

        Assert.That(UpdateRules.Apply(d, Report("failed", reason: "download", detail: "connection reset"), def, T0 + 2 * Second), Is.EqualTo(UpdateChange.Retried));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Notified));
        Assert.That(d.Attempt, Is.EqualTo(2));
        Assert.That(d.Bytes, Is.Zero);
        Assert.That(d.Active, Is.EqualTo(1));
        Assert.That(d.Reason, Is.EqualTo("download"));
        Assert.That(d.Detail, Is.EqualTo("connection reset"));
        Assert.That(d.DownloadRetries, Is.EqualTo(1));
        Assert.That(d.StateSince, Is.EqualTo(T0 + 2 * Second));
        Assert.That(d.Deadline, Is.EqualTo(T0 + 2 * Second + def.Timeouts!.NotifiedSeconds!.Value * Second));

        // The retry used up, the next failure of that kind is final.
        UpdateRules.Apply(d, Report("downloading", 100), def, T0 + 3 * Second);
        Assert.That(UpdateRules.Apply(d, Report("failed", reason: "download"), def, T0 + 4 * Second), Is.EqualTo(UpdateChange.Finished));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Failed));
        Assert.That(d.Reason, Is.EqualTo("download"));
        Assert.That(d.Attempt, Is.EqualTo(2));
    }

    [Test]
    public void Retries_are_counted_per_kind()
    {
        var def = Definition(retries: new FailureRetries(1, 0, null, null));
        var d = Notified(def);
        UpdateRules.Apply(d, Report("verifying"), def, T0 + Second);
        Assert.That(UpdateRules.Apply(d, Report("failed", reason: "checksum"), def, T0 + 2 * Second), Is.EqualTo(UpdateChange.Finished),
            "download retries do not cover a checksum failure");
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Failed));
        Assert.That(d.Reason, Is.EqualTo("checksum"));
    }

    [TestCase("downloading", "download", "download")]
    [TestCase("downloading", "checksum", "checksum")]
    [TestCase("installing", "download", "download")]
    [TestCase("verifying", "install", "install")]
    [TestCase("notified", null, "download")]
    [TestCase("downloading", null, "download")]
    [TestCase("verifying", null, "checksum")]
    [TestCase("installing", null, "install")]
    [TestCase("rebooting", null, "install")]
    public void A_failure_without_retries_is_final_with_the_named_reason_or_the_step_s(string step, string? named, string reason)
    {
        var def = Definition();
        var d = At(step, def);
        Assert.That(UpdateRules.Apply(d, Report("failed", reason: named, detail: "boom"), def, T0 + 30 * Second), Is.EqualTo(UpdateChange.Finished));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Failed));
        Assert.That(d.Reason, Is.EqualTo(reason));
        Assert.That(d.Detail, Is.EqualTo("boom"));
        Assert.That(d.Active, Is.Zero, "the device is free for another campaign");
        Assert.That(d.FinishedAt, Is.EqualTo(T0 + 30 * Second));
        Assert.That(d.Deadline, Is.Null);
    }

    [Test]
    public void A_rejection_is_final_whatever_the_retries()
    {
        var def = Definition(retries: new FailureRetries(10, 10, 10, 10));
        var d = Notified(def);
        Assert.That(UpdateRules.Apply(d, Report("rejected", detail: "battery low"), def, T0 + Second), Is.EqualTo(UpdateChange.Finished));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Rejected));
        Assert.That(d.Reason, Is.EqualTo("rejected"));
        Assert.That(d.Detail, Is.EqualTo("battery low"));
        Assert.That(d.Active, Is.Zero);
        Assert.That(DeviceUpdateStates.IsFailure(d.State), Is.True, "counts against the failure threshold");
    }

    // ---- timeouts ----------------------------------------------------------------------------------------------------

    [Test]
    public void A_step_times_out_at_its_deadline_and_not_before()
    {
        var def = Definition(new StepTimeouts(60, null, null, null, null, null));
        var d = Notified(def);
        Assert.That(d.Deadline, Is.EqualTo(T0 + 60 * Second));
        Assert.That(UpdateRules.TimeOut(d, def, T0 + 59 * Second), Is.EqualTo(UpdateChange.None));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Notified));

        Assert.That(UpdateRules.TimeOut(d, def, T0 + 60 * Second), Is.EqualTo(UpdateChange.Finished));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.TimedOut));
        Assert.That(d.Reason, Is.EqualTo("timeout"));
        Assert.That(d.Detail, Does.Contain("notified").And.Contain("60 s"));
        Assert.That(d.Active, Is.Zero);
        Assert.That(d.Deadline, Is.Null);
    }

    [TestCase("downloading")]
    [TestCase("verifying")]
    [TestCase("installing")]
    [TestCase("rebooting")]
    public void Each_step_has_its_own_timeout_from_when_the_device_entered_it(string step)
    {
        var def = Definition(new StepTimeouts(1000, 100, 200, 300, 400, null));
        var d = At(step, def);
        var limit = def.Timeouts!.Of(step);
        Assert.That(d.Deadline, Is.EqualTo(d.StateSince + limit * Second));
        Assert.That(UpdateRules.TimeOut(d, def, d.StateSince + limit * Second - 1), Is.EqualTo(UpdateChange.None));
        Assert.That(UpdateRules.TimeOut(d, def, d.StateSince + limit * Second), Is.EqualTo(UpdateChange.Finished));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.TimedOut));
        Assert.That(d.Detail, Does.Contain(step));
    }

    [Test]
    public void Progress_within_a_step_does_not_extend_its_timeout()
    {
        var def = Definition(new StepTimeouts(null, 100, null, null, null, null));
        var d = At(DeviceUpdateStates.Downloading, def);
        var deadline = d.Deadline;
        UpdateRules.Apply(d, Report("downloading", 10), def, d.StateSince + 50 * Second);
        Assert.That(d.Deadline, Is.EqualTo(deadline));
    }

    [Test]
    public void The_overall_timeout_counts_from_the_notification_and_is_never_retried()
    {
        var def = Definition(new StepTimeouts(null, null, null, null, null, 100), new FailureRetries(null, null, null, 3));
        var d = Notified(def);
        Assert.That(d.Deadline, Is.EqualTo(T0 + 100 * Second), "the overall timeout is earlier than the notified step's");
        UpdateRules.Apply(d, Report("downloading", 1), def, T0 + 90 * Second);
        Assert.That(d.Deadline, Is.EqualTo(T0 + 100 * Second), "a new step does not restart the overall timeout");

        Assert.That(UpdateRules.TimeOut(d, def, T0 + 100 * Second), Is.EqualTo(UpdateChange.Finished));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.TimedOut));
        Assert.That(d.Reason, Is.EqualTo("timeout"));
        Assert.That(d.Detail, Does.Contain("100 s after it was notified"));
        Assert.That(d.TimeoutRetries, Is.Zero);
    }

    [Test]
    public void A_timeout_with_a_timeout_retry_left_notifies_the_device_again_then_times_out()
    {
        var def = Definition(new StepTimeouts(60, null, null, null, null, null), new FailureRetries(null, null, null, 1));
        var d = Notified(def);

        Assert.That(UpdateRules.TimeOut(d, def, T0 + 61 * Second), Is.EqualTo(UpdateChange.Retried));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Notified));
        Assert.That(d.Attempt, Is.EqualTo(2));
        Assert.That(d.TimeoutRetries, Is.EqualTo(1));
        Assert.That(d.Reason, Is.EqualTo("timeout"));
        Assert.That(d.Deadline, Is.EqualTo(T0 + 121 * Second), "a fresh period from the new notification");

        Assert.That(UpdateRules.TimeOut(d, def, T0 + 120 * Second), Is.EqualTo(UpdateChange.None));
        Assert.That(UpdateRules.TimeOut(d, def, T0 + 121 * Second), Is.EqualTo(UpdateChange.Finished));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.TimedOut));
        Assert.That(d.Attempt, Is.EqualTo(2));
    }

    [Test]
    public void A_finished_or_queued_row_never_times_out()
    {
        var def = Definition(new StepTimeouts(60, null, null, null, null, null));
        var d = Notified(def);
        UpdateRules.Apply(d, Report("rejected"), def, T0 + Second);
        Assert.That(UpdateRules.TimeOut(d, def, T0 + 1000 * Second), Is.EqualTo(UpdateChange.None));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Rejected));

        var queued = new CampaignDevice { CampaignId = Campaign, DeviceId = "q", State = DeviceUpdateStates.Queued, StateSince = T0 };
        Assert.That(UpdateRules.TimeOut(queued, def, T0 + 1000 * Second), Is.EqualTo(UpdateChange.None));
    }

    // ---- proof -------------------------------------------------------------------------------------------------------

    /// <summary>A device that began installing at T0 + 3 s and said it succeeded at T0 + 4 s.</summary>
    private static (CampaignDevice Row, CampaignDefinition Def) Rebooting(FailureRetries? retries = null)
    {
        var def = Definition(retries: retries);
        var d = At(DeviceUpdateStates.Rebooting, def);
        Assert.That(d.InstallingSince, Is.EqualTo(T0 + 3 * Second));
        Assert.That(d.StateSince, Is.EqualTo(T0 + 4 * Second));
        return (d, def);
    }

    private static DeviceFirmware Firmware(string version, long reportedAt, long? connectedAt) =>
        new() { DeviceId = "d", Version = version, VersionReportedAt = reportedAt, ConnectedAt = connectedAt };

    [Test]
    public void The_new_version_on_a_connection_made_after_the_install_proves_the_update()
    {
        var (d, def) = Rebooting();
        Assert.That(UpdateRules.Prove(d, Firmware(Target, T0 + 11 * Second, T0 + 10 * Second), Target, def, T0 + 11 * Second), Is.EqualTo(UpdateChange.Finished));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Succeeded));
        Assert.That(d.Reason, Is.Null);
        Assert.That(d.Active, Is.Zero);
        Assert.That(d.FinishedAt, Is.EqualTo(T0 + 11 * Second));
    }

    [Test]
    public void A_connection_from_before_the_install_proves_nothing()
    {
        var (d, def) = Rebooting();
        Assert.That(UpdateRules.Prove(d, Firmware(Target, T0 + 11 * Second, T0 + 2 * Second), Target, def, T0 + 11 * Second), Is.EqualTo(UpdateChange.None));
        Assert.That(UpdateRules.Prove(d, Firmware(Target, T0 + 11 * Second, T0 + 3 * Second), Target, def, T0 + 11 * Second), Is.EqualTo(UpdateChange.None),
            "a connection at the very moment it began installing is not after it");
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Rebooting));
    }

    [Test]
    public void A_version_reported_before_the_new_connection_proves_nothing()
    {
        var (d, def) = Rebooting();
        // It connected again at T0 + 10 s, but the version on record was reported at T0 + 9 s, on the old connection.
        Assert.That(UpdateRules.Prove(d, Firmware(Target, T0 + 9 * Second, T0 + 10 * Second), Target, def, T0 + 10 * Second), Is.EqualTo(UpdateChange.None));
        // A version reported before the install proves nothing either, even with a new connection.
        Assert.That(UpdateRules.Prove(d, Firmware(Target, T0 + 2 * Second, T0 + 10 * Second), Target, def, T0 + 10 * Second), Is.EqualTo(UpdateChange.None));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Rebooting));
    }

    [Test]
    public void The_old_version_after_the_device_said_it_succeeded_is_a_roll_back()
    {
        var (d, def) = Rebooting();
        Assert.That(UpdateRules.Prove(d, Firmware("1.0.0", T0 + 11 * Second, T0 + 10 * Second), Target, def, T0 + 11 * Second), Is.EqualTo(UpdateChange.Finished));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Failed));
        Assert.That(d.Reason, Is.EqualTo("rolled back"));
        Assert.That(d.Detail, Does.Contain("1.0.0"));
    }

    [Test]
    public void A_roll_back_is_an_install_failure_and_retried_while_install_retries_are_left()
    {
        var (d, def) = Rebooting(new FailureRetries(null, null, 1, null));
        Assert.That(UpdateRules.Prove(d, Firmware("1.0.0", T0 + 11 * Second, T0 + 10 * Second), Target, def, T0 + 11 * Second), Is.EqualTo(UpdateChange.Retried));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Notified));
        Assert.That(d.Attempt, Is.EqualTo(2));
        Assert.That(d.InstallRetries, Is.EqualTo(1));
        Assert.That(d.InstallingSince, Is.Null, "the next attempt needs proof after its own install");
    }

    [Test]
    public void A_device_that_never_connected_over_MQTT_is_proven_by_a_version_reported_after_it_said_it_succeeded()
    {
        var (d, def) = Rebooting();
        Assert.That(UpdateRules.Prove(d, Firmware(Target, T0 + 5 * Second, null), Target, def, T0 + 5 * Second), Is.EqualTo(UpdateChange.Finished));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Succeeded));
    }

    [Test]
    public void A_device_without_MQTT_that_has_not_said_it_succeeded_is_not_judged()
    {
        var def = Definition();
        var d = At(DeviceUpdateStates.Installing, def);
        Assert.That(UpdateRules.Prove(d, Firmware(Target, T0 + 5 * Second, null), Target, def, T0 + 5 * Second), Is.EqualTo(UpdateChange.None));
        Assert.That(UpdateRules.Prove(d, Firmware("1.0.0", T0 + 5 * Second, null), Target, def, T0 + 5 * Second), Is.EqualTo(UpdateChange.None));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Installing));
    }

    [Test]
    public void A_device_without_MQTT_is_not_judged_by_the_version_it_reported_before_it_said_it_succeeded()
    {
        // Installing since T0 + 3 s; it reported its (old) version at T0 + 3.5 s while installing; said succeeded at T0 + 4 s.
        // Any later look at it (a report of its hardware model only) must not take that old report for a roll back.
        var (d, def) = Rebooting();
        Assert.That(UpdateRules.Prove(d, Firmware("1.0.0", T0 + 3500, null), Target, def, T0 + 6 * Second), Is.EqualTo(UpdateChange.None));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Rebooting));
        Assert.That(UpdateRules.Prove(d, Firmware(Target, T0 + 7 * Second, null), Target, def, T0 + 7 * Second), Is.EqualTo(UpdateChange.Finished));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Succeeded));
    }

    [Test]
    public void A_device_that_is_not_installing_is_never_judged_by_its_version()
    {
        var def = Definition();
        var d = At(DeviceUpdateStates.Downloading, def);
        Assert.That(UpdateRules.Prove(d, Firmware(Target, T0 + 11 * Second, T0 + 10 * Second), Target, def, T0 + 11 * Second), Is.EqualTo(UpdateChange.None));
        Assert.That(d.State, Is.EqualTo(DeviceUpdateStates.Downloading));
    }

    // ---- parsing what a device sends -------------------------------------------------------------------------------------

    [Test]
    public void A_well_formed_report_is_read_whole()
    {
        var error = UpdateRules.Parse("""{"campaignId": 7, "status": "failed", "bytes": 4096, "reason": "checksum", "detail": "SHA-256 mismatch"}"""u8, out var r);
        Assert.That(error, Is.Null);
        Assert.That(r, Is.EqualTo(new ProgressReport(7, "failed", 4096, "checksum", "SHA-256 mismatch")));

        Assert.That(UpdateRules.Parse("""{"campaignId": 7, "status": "verifying", "bytes": null, "reason": null, "detail": null}"""u8, out r), Is.Null);
        Assert.That(r, Is.EqualTo(new ProgressReport(7, "verifying", null, null, null)));
    }

    private static IEnumerable<TestCaseData> Malformed()
    {
        TestCaseData Case(string name, byte[] payload, string mentions) => new TestCaseData(payload, mentions).SetArgDisplayNames(name);
        byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);
        yield return Case("not JSON", Utf8("downloading 50%"), "JSON");
        yield return Case("empty", [], "JSON");
        yield return Case("truncated", Utf8("""{"campaignId": 7, "status": "downl"""), "JSON");
        yield return Case("not UTF-8", [.. Utf8("{\"campaignId\": 7, \"status\": \""), 0xFF, 0xFE, .. Utf8("\"}")], "status");
        yield return Case("nested 1000 deep", Utf8(new string('[', 1000) + new string(']', 1000)), "JSON");
        yield return Case("array", Utf8("""[{"campaignId": 7, "status": "downloading"}]"""), "object");
        yield return Case("string", Utf8("\"downloading\""), "object");
        yield return Case("null", Utf8("null"), "object");
        yield return Case("status given twice", Utf8("""{"campaignId": 7, "status": "failed", "status": "succeeded"}"""), "'status' appears more than once");
        yield return Case("missing campaignId", Utf8("""{"status": "downloading"}"""), "campaignId");
        yield return Case("campaignId as text", Utf8("""{"campaignId": "7", "status": "downloading"}"""), "campaignId");
        yield return Case("campaignId 0", Utf8("""{"campaignId": 0, "status": "downloading"}"""), "campaignId");
        yield return Case("campaignId negative", Utf8("""{"campaignId": -7, "status": "downloading"}"""), "campaignId");
        yield return Case("campaignId fraction", Utf8("""{"campaignId": 7.5, "status": "downloading"}"""), "campaignId");
        yield return Case("campaignId huge", Utf8("""{"campaignId": 1e300, "status": "downloading"}"""), "campaignId");
        yield return Case("missing status", Utf8("""{"campaignId": 7}"""), "status");
        yield return Case("unknown status", Utf8("""{"campaignId": 7, "status": "exploded"}"""), "status");
        yield return Case("status as number", Utf8("""{"campaignId": 7, "status": 2}"""), "status");
        yield return Case("status in other case", Utf8("""{"campaignId": 7, "status": "DOWNLOADING"}"""), "status");
        yield return Case("negative bytes", Utf8("""{"campaignId": 7, "status": "downloading", "bytes": -1}"""), "bytes");
        yield return Case("bytes as text", Utf8("""{"campaignId": 7, "status": "downloading", "bytes": "100"}"""), "bytes");
        yield return Case("bytes fraction", Utf8("""{"campaignId": 7, "status": "downloading", "bytes": 1.5}"""), "bytes");
        yield return Case("unknown reason", Utf8("""{"campaignId": 7, "status": "failed", "reason": "cosmic ray"}"""), "reason");
        yield return Case("reason as number", Utf8("""{"campaignId": 7, "status": "failed", "reason": 3}"""), "reason");
        yield return Case("detail as object", Utf8("""{"campaignId": 7, "status": "failed", "detail": {"code": 3}}"""), "detail");
        yield return Case("20 KiB", Utf8("{\"campaignId\": 7, \"status\": \"failed\", \"detail\": \"" + new string('x', 20 * 1024) + "\"}"), "16 KiB");
        yield return Case("lone surrogate in status", Utf8("""{"campaignId": 7, "status": "\ud800"}"""), "status");
        yield return Case("lone surrogate in reason", Utf8("""{"campaignId": 7, "status": "failed", "reason": "\udc00"}"""), "reason");
    }

    [TestCaseSource(nameof(Malformed))]
    public void A_malformed_report_is_refused_with_a_clear_reason_never_an_exception(byte[] payload, string mentions)
    {
        string? error = null;
        Assert.DoesNotThrow(() => error = UpdateRules.Parse(payload, out _));
        Assert.That(error, Is.Not.Null.And.Not.Empty);
        Assert.That(error, Does.Contain(mentions));
        Assert.That(error!.Length, Is.LessThan(400), "an answer fit for a PUBACK reason string");
    }

    [Test]
    public void A_hostile_detail_is_kept_short_and_storable()
    {
        var detail = "boot\0loader " + new string('é', 100) + new string('x', 10_000);
        var payload = Encoding.UTF8.GetBytes($$"""{"campaignId": 7, "status": "failed", "detail": "{{detail.Replace("\0", "\\u0000")}}"}""");
        Assert.That(payload.Length, Is.GreaterThan(10_000).And.LessThan(16 * 1024));
        string? error = null;
        ProgressReport r = default;
        Assert.DoesNotThrow(() => error = UpdateRules.Parse(payload, out r));
        Assert.That(error, Is.Null);
        Assert.That(r.Detail, Is.Not.Null);
        Assert.That(r.Detail!.Length, Is.LessThanOrEqualTo(UpdateRules.MaxDetail));
        Assert.That(r.Detail, Does.Not.Contain("\0"));
        Assert.That(r.Detail, Does.StartWith("boot\uFFFDloader é"));
    }

    [Test]
    public void A_lone_surrogate_in_the_detail_is_replaced_not_thrown()
    {
        string? error = null;
        ProgressReport r = default;
        Assert.DoesNotThrow(() => error = UpdateRules.Parse("""{"campaignId": 7, "status": "failed", "detail": "bad \ud800 half"}"""u8, out r));
        Assert.That(error, Is.Null.Or.Contain("detail"));
        if (error is null) Assert.That(r.Detail, Does.Not.Contain("\ud800"));
        Assert.DoesNotThrow(() => error = UpdateRules.Parse([.. """{"campaignId": 7, "status": "failed", "detail": "bad """u8, 0xC3, .. """ half"}"""u8], out r));
        Assert.That(error, Is.Null.Or.Contain("detail"), "invalid UTF-8 in the detail");
    }
}
