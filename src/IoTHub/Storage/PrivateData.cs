// The data directory holds the SQLite database, the generated admin password and the data-protection keys that sign
// the UI's cookies: on Unix only the hub's own user may read it. The directory (and the keys folder in it) is created
// 0700 and every file IoTHub writes there 0600. SQLite creates its -wal, -shm and -journal files with the mode of the
// database file (unix VFS: robust_open with the main file's st_mode), so IoTHub creates the database file itself,
// empty and 0600, before SQLite first opens it. A directory or file that an earlier version (or a hand) left readable
// by others is made private at start, with one warning naming what was changed.
using Microsoft.Extensions.Options;

namespace IoTHub.Storage;

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

/// <summary>At start, before any other hosted service writes there: creates the data directory 0700, or makes an
/// existing one and the files IoTHub keeps in it private, with one warning naming what it changed.</summary>
internal sealed class DataDirectoryGuard(IOptions<DataLocation> data, ILogger<DataDirectoryGuard> log) : IHostedLifecycleService
{
    /// <summary>What IoTHub writes in the data directory, relative to it (the keys folder's files are added).</summary>
    private static readonly string[] Owned =
        ["iothub.db", "iothub.db-wal", "iothub.db-shm", "iothub.db-journal", "initial-admin-password", "keys"];

    public Task StartingAsync(CancellationToken cancellationToken)
    {
        if (OperatingSystem.IsWindows()) return Task.CompletedTask;
        var dir = data.Value.Directory;
        OwnerOnly.CreateDirectory(dir);
        var keys = Path.Combine(dir, "keys");
        var paths = new List<string> { dir };
        paths.AddRange(Owned.Select(p => Path.Combine(dir, p)));
        if (Directory.Exists(keys)) paths.AddRange(Directory.EnumerateFiles(keys, "*.xml"));

        var changed = new List<string>();
        foreach (var path in paths)
        {
            try
            {
                if (OwnerOnly.Tighten(path) is { } was) changed.Add($"{path} ({OwnerOnly.Octal(was)} -> {OwnerOnly.Octal(File.GetUnixFileMode(path))})");
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                log.LogWarning("Could not make {Path} readable by its owner only: {Error}", path, ex.Message);
            }
        }
        if (changed.Count > 0)
            log.LogWarning("The data directory was readable by other users; made private: {Paths}", string.Join(", ", changed));
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
