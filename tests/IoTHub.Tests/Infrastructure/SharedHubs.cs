// One started host per store for every fixture that needs no special settings: starting the host (and on PostgreSQL
// creating and migrating a database) costs about a second and a half, which 30-odd fixtures paid each. Started on
// first use, so a run of SQLite fixtures only never touches PostgreSQL; stopped once every fixture has finished.
namespace IoTHub.Tests.Infrastructure;

public static class SharedHubs
{
    private static readonly Lazy<Task<HubHost>> Sqlite = new(() => Start(Store.Sqlite));
    private static readonly Lazy<Task<HubHost>> Postgres = new(() => Start(Store.Postgres));

    /// <summary>Started outside the first fixture's execution context, so the host's background work is nobody's test.</summary>
    private static Task<HubHost> Start(Store store)
    {
        using (ExecutionContext.SuppressFlow()) return Task.Run(() => HubHost.StartAsync(store));
    }

    /// <summary>The store's shared host; a failure to start it (PostgreSQL missing: ignored, or failed in CI) is every
    /// sharing fixture's.</summary>
    public static Task<HubHost> ForAsync(Store store) => (store == Store.Sqlite ? Sqlite : Postgres).Value;

    internal static async Task StopAsync()
    {
        foreach (var hub in new[] { Sqlite, Postgres })
        {
            if (hub.IsValueCreated && hub.Value.IsCompletedSuccessfully) await hub.Value.Result.DisposeAsync();
        }
    }
}
