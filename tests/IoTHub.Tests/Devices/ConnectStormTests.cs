using IoTHub.Tests.Infrastructure;
using MQTTnet;
using Npgsql;

namespace IoTHub.Tests.Devices;

/// <summary>A fleet reconnecting at once (after a network blip or a hub restart) must not turn into a database
/// connection per device: the benchmark's 1,000 devices reconnecting once hit PostgreSQL's max_connections and
/// stalled every ack for seconds.</summary>
[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
[OwnHost("counts the connections to the hub's database")]
public sealed class ConnectStormTests(Store store) : HubFixture(store)
{
    private const int Devices = 200;

    [Test]
    public async Task Two_hundred_devices_connecting_at_once_are_recorded_over_a_few_database_connections()
    {
        var devices = new List<(string Id, string Token)>();
        for (var i = 0; i < Devices; i++) devices.Add(await Hub.CreateDeviceAsync());

        using var sampling = new CancellationTokenSource();
        var peak = 0;
        var sampler = Store == Store.Postgres ? Task.Run(async () =>
        {
            await using var c = new NpgsqlConnection(Hub.PostgresConnectionString);
            await c.OpenAsync();
            await using var count = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()", c);
            while (!sampling.IsCancellationRequested)
            {
                peak = Math.Max(peak, (int)(long)(await count.ExecuteScalarAsync())!);
                await Task.Delay(20);
            }
        }) : Task.CompletedTask;

        var clients = await Task.WhenAll(devices.Select(d => Hub.ConnectAsync(d.Id, d.Token)));
        using var admin = await Hub.AdminAsync();
        try
        {
            await WaitFor.ConditionAsync(async () => await CountAsync(admin, devices, "online") == Devices, "every device shows online", TimeSpan.FromSeconds(20));
        }
        finally
        {
            await sampling.CancelAsync();
            await sampler;
        }
        foreach (var (id, _) in devices.Take(20))
        {
            Assert.That((await admin.GetJsonAsync($"/api/v1/devices/{id}/connections"))["items"]!.AsArray(), Has.Count.EqualTo(1), $"{id}: one connection recorded");
        }
        if (Store == Store.Postgres)
        {
            // Telemetry writers, the presence writer, at most 8 credential lookups, the API and this sampler.
            Assert.That(peak, Is.LessThanOrEqualTo(20), "database connections of the hub's database at the peak of the storm");
        }

        await Task.WhenAll(clients.Select(c => c.DisconnectAsync()));
        foreach (var c in clients) c.Dispose();
        await WaitFor.ConditionAsync(async () => await CountAsync(admin, devices, "offline") == Devices, "every device shows offline", TimeSpan.FromSeconds(20));
    }

    private static async Task<int> CountAsync(HttpClient admin, List<(string Id, string Token)> devices, string status)
    {
        var n = 0;
        foreach (var (id, _) in devices)
            if ((await admin.GetJsonAsync($"/api/v1/devices/{id}"))["status"]!.GetValue<string>() == status) n++;
        return n;
    }
}
