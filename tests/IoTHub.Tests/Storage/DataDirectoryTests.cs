// The data directory on the real host: created 0700, and every file the hub writes there (database, its -wal and
// -shm, generated admin password, data-protection keys) 0600; one left readable by others is made private at start.
using System.Net;
using System.Net.Http.Json;
using IoTHub.Tests.Infrastructure;
using Microsoft.Extensions.Logging;

namespace IoTHub.Tests.Storage;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class DataDirectoryTests(Store store)
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode PrivateDirectory = Private | UnixFileMode.UserExecute;

    [SetUp]
    public void UnixOnly()
    {
        if (OperatingSystem.IsWindows()) Assert.Ignore("Unix file modes");
    }

    /// <summary>Starts a hub on a data directory that does not exist yet, with a generated admin password.</summary>
    private Task<HubHost> StartAsync(string dataDirectory, CapturedLogs logs) =>
        HubHost.StartAsync(store, new Dictionary<string, string?>
        {
            ["DataDirectory"] = dataDirectory,
            ["Bootstrap:AdminPassword"] = "",
        }, b => b.Logging.AddProvider(logs));

    /// <summary>Writes what the hub writes: telemetry (the database and its WAL), a sign-in with the generated password,
    /// and the UI's sign-in page (a data-protection key for its antiforgery token).</summary>
    private static async Task UseAsync(HubHost hub, string dataDirectory)
    {
        var password = (await File.ReadAllTextAsync(Path.Combine(dataDirectory, "initial-admin-password"))).Trim();
        using var admin = hub.WithBearer(await hub.TokenAsync("admin", password));
        var created = await admin.PostAsJsonAsync("/api/v1/devices", new { });
        Assert.That(created.StatusCode, Is.EqualTo(HttpStatusCode.Created));
        var device = (await created.Content.ReadFromJsonAsync<HubHost.CreatedDeviceResponse>())!;
        using var http = hub.WithBearer(device.Token);
        Assert.That((await http.PostAsync($"/api/v1/devices/{device.Id}/telemetry", Json.Body("""{"t": 1}"""))).StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        using var anonymous = hub.Anonymous();
        Assert.That((await anonymous.GetAsync("/login")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    /// <summary>Every directory under (and including) the data directory with its mode, and every file with its mode.</summary>
    private static (Dictionary<string, UnixFileMode> Directories, Dictionary<string, UnixFileMode> Files) Modes(string dataDirectory) =>
        (Directory.EnumerateDirectories(dataDirectory, "*", SearchOption.AllDirectories).Append(dataDirectory).ToDictionary(d => d, File.GetUnixFileMode),
         Directory.EnumerateFiles(dataDirectory, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.GetUnixFileMode));

    private void AssertPrivate(string dataDirectory)
    {
        var (directories, files) = Modes(dataDirectory);
        var names = files.Keys.Select(f => Path.GetRelativePath(dataDirectory, f)).ToList();
        Assert.That(names, Does.Contain("initial-admin-password"));
        Assert.That(names.Any(n => n.StartsWith("keys" + Path.DirectorySeparatorChar, StringComparison.Ordinal) && n.EndsWith(".xml", StringComparison.Ordinal)), Is.True,
            "a data-protection key was written");
        if (store == Store.Sqlite) Assert.That(names, Does.Contain("iothub.db").And.Contain("iothub.db-wal").And.Contain("iothub.db-shm"));
        Assert.Multiple(() =>
        {
            foreach (var (path, mode) in directories)
                Assert.That(mode, Is.EqualTo(PrivateDirectory), $"{path} is {Convert.ToString((int)mode, 8)}");
            foreach (var (path, mode) in files)
                Assert.That(mode, Is.EqualTo(Private), $"{path} is {Convert.ToString((int)mode, 8)}");
        });
    }

    [Test]
    public async Task A_new_data_directory_is_private_to_the_hub_and_so_is_every_file_it_writes_there()
    {
        var logs = new CapturedLogs();
        var parent = Path.Combine(Path.GetTempPath(), "iothub-tests", Guid.NewGuid().ToString("N")[..12]);
        var data = Path.Combine(parent, "data");
        await using (var hub = await StartAsync(data, logs))
        {
            await UseAsync(hub, data);
            AssertPrivate(data);
            Assert.That(logs.Lines.Where(l => l.Message.Contains("readable by other users", StringComparison.Ordinal)), Is.Empty,
                "a directory the hub created itself needs no tightening");
        }
        Directory.Delete(parent, recursive: true);
    }

    [Test]
    public async Task A_data_directory_left_readable_by_others_is_made_private_at_start_with_one_warning()
    {
        var logs = new CapturedLogs();
        var parent = Path.Combine(Path.GetTempPath(), "iothub-tests", Guid.NewGuid().ToString("N")[..12]);
        var data = Path.Combine(parent, "data");
        await using (var hub = await StartAsync(data, logs))
        {
            await UseAsync(hub, data);
            await hub.StopAppAsync();

            // As an earlier version (or a hand) left them: the directory 0755, the files 0644.
            var (directories, files) = Modes(data);
            foreach (var d in directories.Keys) File.SetUnixFileMode(d, PrivateDirectory | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
            foreach (var f in files.Keys) File.SetUnixFileMode(f, Private | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            logs.Clear();

            await hub.RestartAsync();
            AssertPrivate(data);
            var warning = logs.Lines.Single(l => l.Message.Contains("readable by other users", StringComparison.Ordinal));
            Assert.That(warning.Level, Is.EqualTo(LogLevel.Warning));
            Assert.That(warning.Message, Does.Contain($"{data} (755 -> 700)").And.Contain("initial-admin-password (644 -> 600)"));
            await UseAsync(hub, data);
            AssertPrivate(data);
        }
        Directory.Delete(parent, recursive: true);
    }
}
