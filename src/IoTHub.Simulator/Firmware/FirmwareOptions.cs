// How the simulated devices take firmware updates (docs/firmware.md, "The device's side") and which faults they show.
namespace IoTHub.Simulator.Firmware;

/// <summary>How simulated devices take firmware updates, and the share of them that show each fault.</summary>
public sealed record FirmwareOptions
{
    /// <summary>The version every device starts on, reported as <c>firmwareVersion</c>.</summary>
    public string InitialVersion { get; init; } = "1.0.0";

    /// <summary>Bytes asked for in each ranged GET of the image.</summary>
    public int ChunkSize { get; init; } = 64 * 1024;

    /// <summary>Share of notified devices whose install fails (spread evenly, see <see cref="EvenSpread"/>).</summary>
    public double FailRate { get; init; }

    /// <summary>Share of notified devices that report <c>succeeded</c> but come back on their old version (picked among
    /// those that do not fail the install; at most 1 − <see cref="FailRate"/>).</summary>
    public double RollbackRate { get; init; }

    /// <summary>Share of notified devices that lose their connection halfway through the download and resume it.</summary>
    public double PowerLossRate { get; init; }

    /// <summary>How long installing takes.</summary>
    public TimeSpan InstallTime { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How long a device stays away after a power loss or a reboot before it connects again.</summary>
    public TimeSpan OffTime { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Least time between two <c>downloading</c> reports of one device (the first and the last are always sent).</summary>
    public TimeSpan ProgressInterval { get; init; } = TimeSpan.FromSeconds(1);
}
