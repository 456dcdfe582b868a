// The data directory every module may keep files in, and how a file there is kept private to the hub's own user.

namespace IoTHub.Contracts;

/// <summary>The resolved <c>DataDirectory</c> (default <c>./data</c>).</summary>
public sealed class DataLocation
{
    /// <summary>The data directory as an absolute path (configuration key <c>DataDirectory</c>, relative to the working
    /// directory): the SQLite database and files such as <c>initial-admin-password</c> live here.</summary>
    public string Directory { get; set; } = "data";
}

/// <summary>Creates and tightens files and directories so that only the owner may read them (no-ops on Windows).</summary>
internal static class OwnerOnly
{
    public const UnixFileMode DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    public const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private const UnixFileMode Others = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>Creates the directory 0700 (missing parents get the default mode, as with <c>mkdir -p -m 700</c>);
    /// an existing one is left as it is.</summary>
    public static void CreateDirectory(string path)
    {
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(path);
        else Directory.CreateDirectory(path, DirectoryMode);
    }

    /// <summary>Creates an empty file 0600 unless it exists.</summary>
    public static void CreateFile(string path)
    {
        if (File.Exists(path)) return;
        try
        {
            using var _ = new FileStream(path, Options(System.IO.FileMode.CreateNew));
        }
        catch (IOException) when (File.Exists(path))
        {
            // created by someone else in the meantime
        }
    }

    /// <summary>Writes a whole text file that only the owner may read (created 0600, or tightened when it existed).</summary>
    public static async Task WriteAllTextAsync(string path, string text, CancellationToken ct)
    {
        await using (var stream = new FileStream(path, Options(System.IO.FileMode.Create)))
        await using (var writer = new StreamWriter(stream))
        {
            await writer.WriteAsync(text.AsMemory(), ct);
        }
        Tighten(path);
    }

    /// <summary>Takes every group and other permission away; the mode it had when it changed it, else null.</summary>
    public static UnixFileMode? Tighten(string path)
    {
        if (OperatingSystem.IsWindows() || !Path.Exists(path)) return null;
        var mode = File.GetUnixFileMode(path);
        if ((mode & Others) == 0) return null;
        File.SetUnixFileMode(path, mode & ~Others);
        return mode;
    }

    private static FileStreamOptions Options(System.IO.FileMode mode)
    {
        var options = new FileStreamOptions { Mode = mode, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = FileMode;
        return options;
    }

    /// <summary>"755" for rwxr-xr-x.</summary>
    public static string Octal(UnixFileMode mode) => Convert.ToString((int)mode & 0x1FF, 8);
}

/// <summary>How far back a telemetry timestamp is accepted: key <c>MaxPastAge</c> of section <c>Validation</c>, which
/// validation enforces and storage sizes its raw partitions by. One typed option, one default.</summary>
public sealed class TelemetryAge
{
    /// <summary>The configuration section it is read from: <c>Validation</c>, shared with <c>ValidationOptions</c>.</summary>
    public const string SectionName = "Validation";

    /// <summary>The default: 30 days.</summary>
    public static readonly TimeSpan DefaultMaxPastAge = TimeSpan.FromDays(30);

    /// <summary>Points older than this are rejected (a device clock years off, or a replay).</summary>
    public TimeSpan MaxPastAge { get; set; } = DefaultMaxPastAge;
}
