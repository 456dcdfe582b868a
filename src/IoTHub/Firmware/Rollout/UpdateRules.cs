// How one device's update moves (docs/firmware.md, "The device's side"): progress reports only move it forward, a
// failure is retried while its kind has retries left, a step that takes too long times out, and success needs proof:
// a connection that began after the install, then a report of the new version. Pure functions over the row, so
// that the rules are specified by fast tests (tests/IoTHub.Tests/Firmware/UpdateRulesSpecs.cs).
using System.Text.Json;
using IoTHub.Firmware.Campaigns;

namespace IoTHub.Firmware.Rollout;

/// <summary>A progress report as a device sends it.</summary>
internal readonly record struct ProgressReport(long CampaignId, string Status, long? Bytes, string? Reason, string? Detail);

/// <summary>What applying something to a device's row did.</summary>
internal enum UpdateChange
{
    /// <summary>Nothing (a resent, stale or irrelevant report).</summary>
    None,
    /// <summary>The state or the byte count moved.</summary>
    Moved,
    /// <summary>It failed with retries left: it is notified again (a new notification must go out).</summary>
    Retried,
    /// <summary>It reached a final state (its notification must be withdrawn).</summary>
    Finished,
}

internal static class UpdateRules
{
    /// <summary>The statuses a device may report.</summary>
    public static readonly string[] Statuses = ["downloading", "verifying", "installing", "rebooting", "succeeded", "failed", "rejected"];

    /// <summary>The failure kinds a device may name (<c>reason</c> of a <c>failed</c> report).</summary>
    public static readonly string[] Kinds = ["download", "checksum", "install"];

    public const int MaxDetail = 500;

    /// <summary>Reads a report; null when it is one, else why not (for a PUBACK 0x99 or an HTTP 400).</summary>
    public static string? Parse(ReadOnlySpan<byte> payload, out ProgressReport report)
    {
        report = default;
        if (payload.Length > 16 * 1024) return "a progress report is at most 16 KiB";
        JsonElement root;
        try
        {
            using var doc = JsonDocument.Parse(payload.ToArray(), Contracts.RepeatedNames.DocumentOptions());
            root = doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            return Contracts.RepeatedNames.TryDescribe(e, out var repeated) ? "progress: " + repeated : "progress is not valid JSON: " + e.Message;
        }
        if (root.ValueKind != JsonValueKind.Object) return "progress must be a JSON object";
        if (!root.TryGetProperty("campaignId", out var c) || c.ValueKind != JsonValueKind.Number || !c.TryGetInt64(out var campaignId) || campaignId <= 0)
            return "campaignId must be the campaign's id (a positive integer)";
        if (!root.TryGetProperty("status", out var s) || !TryText(s, out var status) || !Statuses.Contains(status))
            return "status must be one of " + string.Join(", ", Statuses);
        long? bytes = null;
        if (root.TryGetProperty("bytes", out var b) && b.ValueKind != JsonValueKind.Null)
        {
            if (b.ValueKind != JsonValueKind.Number || !b.TryGetInt64(out var n) || n < 0) return "bytes must be a non-negative integer";
            bytes = n;
        }
        string? reason = null;
        if (root.TryGetProperty("reason", out var r) && r.ValueKind != JsonValueKind.Null)
        {
            if (!TryText(r, out reason) || !Kinds.Contains(reason)) return "reason must be one of " + string.Join(", ", Kinds);
        }
        string? detail = null;
        if (root.TryGetProperty("detail", out var d) && d.ValueKind != JsonValueKind.Null)
        {
            if (d.ValueKind != JsonValueKind.String) return "detail must be a string";
            if (!TryText(d, out var text)) return "detail must be valid Unicode text (not invalid UTF-8 nor a lone surrogate escape)";
            detail = Contracts.SafeText.Prefix(Contracts.SafeText.Storable(text), MaxDetail);
        }
        report = new ProgressReport(campaignId, status, bytes, reason, detail);
        return null;
    }

    /// <summary>A JSON string's text; false for another kind of value, or for text that is not valid Unicode (invalid UTF-8,
    /// a lone surrogate escape such as <c>"\ud800"</c>), which <see cref="JsonElement.GetString"/> throws on.</summary>
    private static bool TryText(JsonElement e, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? text)
    {
        text = null;
        if (e.ValueKind != JsonValueKind.String) return false;
        try
        {
            text = e.GetString()!;
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>Applies a report to the device's row in that campaign.</summary>
    public static UpdateChange Apply(CampaignDevice d, ProgressReport r, CampaignDefinition def, long now)
    {
        if (DeviceUpdateStates.IsFinal(d.State) || d.State == DeviceUpdateStates.Queued) return UpdateChange.None;
        switch (r.Status)
        {
            case "failed":
                return Fail(d, r.Reason ?? KindOf(d.State), r.Reason ?? KindOf(d.State), r.Detail, def, now);
            case "rejected":
                return Finish(d, DeviceUpdateStates.Rejected, "rejected", r.Detail, now);
        }
        var to = r.Status == "succeeded" ? DeviceUpdateStates.Rebooting : r.Status;
        var rank = DeviceUpdateStates.Rank(to);
        var current = DeviceUpdateStates.Rank(d.State);
        if (rank < current) return UpdateChange.None; // stale: it already said more
        if (rank == current)
        {
            if (to != DeviceUpdateStates.Downloading || r.Bytes is not { } more || more <= d.Bytes) return UpdateChange.None;
            d.Bytes = more;
            d.UpdatedAt = now;
            return UpdateChange.Moved;
        }
        d.State = to;
        d.StateSince = now;
        if (r.Bytes is { } bytes && bytes > d.Bytes) d.Bytes = bytes;
        if (r.Detail is not null) d.Detail = r.Detail;
        if (rank >= DeviceUpdateStates.Rank(DeviceUpdateStates.Installing)) d.InstallingSince ??= now;
        d.Deadline = DeadlineOf(d, def.Timeouts!);
        d.UpdatedAt = now;
        return UpdateChange.Moved;
    }

    /// <summary>The device's row past its deadline (a step's timeout or the overall one): retried or timed out.</summary>
    public static UpdateChange TimeOut(CampaignDevice d, CampaignDefinition def, long now)
    {
        if (DeviceUpdateStates.IsFinal(d.State) || d.Deadline is not { } deadline || deadline > now) return UpdateChange.None;
        var overall = d.NotifiedAt is { } n && n + def.Timeouts!.OverallSeconds!.Value * 1000L <= now;
        var detail = overall
            ? $"not finished {def.Timeouts!.OverallSeconds} s after it was notified"
            : $"no progress past {d.State} in {def.Timeouts!.Of(d.State)} s";
        if (overall) return Finish(d, DeviceUpdateStates.TimedOut, "timeout", detail, now);
        return Fail(d, "timeout", "timeout", detail, def, now, DeviceUpdateStates.TimedOut);
    }

    /// <summary>Judges an update by what the device reported after it came back: the new version is success; another
    /// version after it said it succeeded is "rolled back".</summary>
    /// <param name="d">The device's row.</param>
    /// <param name="f">What the device last reported and when it last connected.</param>
    /// <param name="target">The campaign's version.</param>
    /// <param name="def">The campaign, for retries.</param>
    /// <param name="now">Now, Unix ms.</param>
    public static UpdateChange Prove(CampaignDevice d, DeviceFirmware f, string target, CampaignDefinition def, long now)
    {
        if (d.State is not (DeviceUpdateStates.Installing or DeviceUpdateStates.Rebooting) || d.InstallingSince is not { } since) return UpdateChange.None;
        if (f.VersionReportedAt is not { } reportedAt || reportedAt < since || f.Version is null) return UpdateChange.None;
        if (f.ConnectedAt is { } connected)
        {
            if (connected <= since || reportedAt < connected) return UpdateChange.None; // not yet back on a new connection
        }
        else if (d.State != DeviceUpdateStates.Rebooting || reportedAt < d.StateSince)
        {
            // A device without MQTT (HTTP, CoAP) first says it is done, then reports the version it came back on: a version
            // it reported while still installing proves nothing either way.
            return UpdateChange.None;
        }
        if (f.Version == target) return Finish(d, DeviceUpdateStates.Succeeded, null, null, now);
        var rolledBack = d.State == DeviceUpdateStates.Rebooting;
        return Fail(d, "install", rolledBack ? "rolled back" : "install", $"came back on version {Contracts.SafeText.Prefix(f.Version, 100)}", def, now);
    }

    /// <summary>A failure of <paramref name="kind"/>: notified again while the kind has retries left, else final.</summary>
    private static UpdateChange Fail(CampaignDevice d, string kind, string reason, string? detail, CampaignDefinition def, long now,
        string finalState = DeviceUpdateStates.Failed)
    {
        var retries = def.Retries!;
        var (used, allowed) = kind switch
        {
            "download" => (d.DownloadRetries, retries.Download!.Value),
            "checksum" => (d.ChecksumRetries, retries.Checksum!.Value),
            "install" => (d.InstallRetries, retries.Install!.Value),
            _ => (d.TimeoutRetries, retries.Timeout!.Value),
        };
        if (used >= allowed) return Finish(d, finalState, reason, detail, now);
        switch (kind)
        {
            case "download": d.DownloadRetries++; break;
            case "checksum": d.ChecksumRetries++; break;
            case "install": d.InstallRetries++; break;
            default: d.TimeoutRetries++; break;
        }
        d.Attempt++;
        d.State = DeviceUpdateStates.Notified;
        d.StateSince = now;
        d.Bytes = 0;
        d.InstallingSince = null;
        d.Reason = reason;
        d.Detail = detail;
        d.Deadline = DeadlineOf(d, def.Timeouts!);
        d.UpdatedAt = now;
        return UpdateChange.Retried;
    }

    private static UpdateChange Finish(CampaignDevice d, string state, string? reason, string? detail, long now)
    {
        d.State = state;
        d.Active = 0;
        d.Reason = reason;
        if (detail is not null) d.Detail = detail;
        d.StateSince = now;
        d.FinishedAt = now;
        d.Deadline = null;
        d.UpdatedAt = now;
        return UpdateChange.Finished;
    }

    /// <summary>When the row times out: the end of its step or of the whole update, whichever is first.</summary>
    public static long DeadlineOf(CampaignDevice d, StepTimeouts t)
    {
        var step = d.StateSince + t.Of(d.State) * 1000L;
        return d.NotifiedAt is { } n ? Math.Min(step, n + t.OverallSeconds!.Value * 1000L) : step;
    }

    /// <summary>The failure kind of a step a device failed in without naming one.</summary>
    private static string KindOf(string state) => state switch
    {
        DeviceUpdateStates.Verifying => "checksum",
        DeviceUpdateStates.Installing or DeviceUpdateStates.Rebooting => "install",
        _ => "download",
    };
}
