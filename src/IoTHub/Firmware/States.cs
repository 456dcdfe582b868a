// The two state machines of a rollout, and their words on the wire and in the store.
//   campaign: draft → running ⇄ paused → completed | aborted
//   device:   queued → notified → downloading → verifying → installing → rebooting → succeeded
//             | failed | timed-out | rejected | canceled
namespace IoTHub.Firmware;

/// <summary>A campaign's state words.</summary>
public static class CampaignStates
{
    /// <summary>Being edited; nothing sent.</summary>
    public const string Draft = "draft";
    /// <summary>Notifying devices wave by wave.</summary>
    public const string Running = "running";
    /// <summary>No new device is notified; devices already updating finish.</summary>
    public const string Paused = "paused";
    /// <summary>Every targeted device finished.</summary>
    public const string Completed = "completed";
    /// <summary>Stopped for good; devices not yet started were canceled.</summary>
    public const string Aborted = "aborted";

    /// <summary>Every state, in lifecycle order.</summary>
    public static readonly string[] All = [Draft, Running, Paused, Completed, Aborted];
}

/// <summary>A device's update state words, in the order an update moves through them, then the final ones.</summary>
public static class DeviceUpdateStates
{
    /// <summary>Waiting for its wave (or for another campaign to let go of the device).</summary>
    public const string Queued = "queued";
    /// <summary>Told about the update; nothing heard yet.</summary>
    public const string Notified = "notified";
    /// <summary>Downloading the image.</summary>
    public const string Downloading = "downloading";
    /// <summary>Checking the image's SHA-256 (and signature).</summary>
    public const string Verifying = "verifying";
    /// <summary>Writing the image.</summary>
    public const string Installing = "installing";
    /// <summary>Said it succeeded and is restarting: success counts when it reconnects on the new version.</summary>
    public const string Rebooting = "rebooting";
    /// <summary>Came back on the new version.</summary>
    public const string Succeeded = "succeeded";
    /// <summary>Failed, with a reason (download, checksum, install, rolled back).</summary>
    public const string Failed = "failed";
    /// <summary>Took longer than a step's or the overall timeout.</summary>
    public const string TimedOut = "timed-out";
    /// <summary>The device refused the update.</summary>
    public const string Rejected = "rejected";
    /// <summary>The campaign was aborted before the device started.</summary>
    public const string Canceled = "canceled";

    /// <summary>Every state: the moving ones in order, then the final ones.</summary>
    public static readonly string[] All = [Queued, Notified, Downloading, Verifying, Installing, Rebooting, Succeeded, Failed, TimedOut, Rejected, Canceled];

    /// <summary>The order of the moving states (queued 0 … rebooting 5); -1 for a final state.</summary>
    public static int Rank(string state) => state switch
    {
        Queued => 0,
        Notified => 1,
        Downloading => 2,
        Verifying => 3,
        Installing => 4,
        Rebooting => 5,
        _ => -1,
    };

    /// <summary>Succeeded, failed, timed-out, rejected or canceled: nothing moves it any more.</summary>
    public static bool IsFinal(string state) => Rank(state) < 0;

    /// <summary>Failed, timed-out or rejected: counts against the failure threshold.</summary>
    public static bool IsFailure(string state) => state is Failed or TimedOut or Rejected;
}
