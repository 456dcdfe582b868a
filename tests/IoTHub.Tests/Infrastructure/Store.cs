using Npgsql;

namespace IoTHub.Tests.Infrastructure;

public enum Store { Sqlite, Postgres }

/// <summary>
/// Where the PostgreSQL tests find a server: IOTHUB_TEST_POSTGRES (a connection string of a user that may create
/// databases), else the local default. Without one they are skipped with the reason, except in CI, where they fail.
/// </summary>
public static class TestPostgres
{
    public static string AdminConnectionString =>
        Environment.GetEnvironmentVariable("IOTHUB_TEST_POSTGRES") is { Length: > 0 } cs
            ? cs
            : "Host=127.0.0.1;Port=5432;Username=postgres;Password=postgres;Timeout=5";

    private static readonly Lazy<string?> Unavailable = new(() =>
    {
        try
        {
            using var c = new NpgsqlConnection(AdminConnectionString);
            c.Open();
            return null;
        }
        catch (Exception ex)
        {
            return ex.Message;
        }
    });

    public static void RequireAvailable()
    {
        if (Unavailable.Value is not { } why) return;
        var message = $"PostgreSQL is not available ({why}); set IOTHUB_TEST_POSTGRES to run these tests.";
        if (Environment.GetEnvironmentVariable("CI") is "true" or "1") Assert.Fail(message);
        Assert.Ignore(message);
    }

    /// <summary>Every database made by <see cref="CreateDatabaseAsync"/> and not dropped yet.</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> Created = new();

    /// <summary>A new empty database; returns its connection string. Dropped by <see cref="DropDatabaseAsync"/>, or at
    /// the end of the run by <see cref="DropLeftoversAsync"/> when its test did not.</summary>
    public static async Task<string> CreateDatabaseAsync()
    {
        RequireAvailable();
        var name = "iothub_test_" + Guid.NewGuid().ToString("N")[..12];
        await using (var c = new NpgsqlConnection(AdminConnectionString))
        {
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand($"CREATE DATABASE {name}", c);
            await cmd.ExecuteNonQueryAsync();
        }
        Created.TryAdd(name, 0);
        return new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = name, Pooling = true }.ConnectionString;
    }

    public static async Task DropDatabaseAsync(string connectionString)
    {
        var name = new NpgsqlConnectionStringBuilder(connectionString).Database;
        NpgsqlConnection.ClearAllPools();
        await using var c = new NpgsqlConnection(AdminConnectionString);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS {name} WITH (FORCE)", c);
        await cmd.ExecuteNonQueryAsync();
        Created.TryRemove(name!, out _);
    }

    /// <summary>Drops what the run made and left (a test that failed half-way, a process that still held it): a test
    /// run leaves no database behind on the user's server.</summary>
    public static async Task<int> DropLeftoversAsync()
    {
        var left = Created.Keys.ToList();
        foreach (var name in left)
            await DropDatabaseAsync(new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = name }.ConnectionString);
        return left.Count;
    }
}
