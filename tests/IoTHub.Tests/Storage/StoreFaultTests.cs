// Faults injected into the real host's telemetry stores (a test-only decorator around each real store): a message the
// database refuses for its data (a real driver exception, thrown when a batch holds a "poison" point), and a commit
// that hangs (any batch of a "stall-" device waits for the test). Issue #15 §3: neither may cost other devices their acks,
// and a hang must show on /health/ready.
using IoTHub.Storage.Queries;
using IoTHub.Storage.Write;
using System.Net;
using IoTHub.Contracts;
using IoTHub.Storage;
using IoTHub.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using Npgsql;

namespace IoTHub.Tests.Storage;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class StoreFaultTests(Store store) : HubFixture(store)
{
    private readonly FaultGate _gate = new();

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?> { ["Storage:CommitStallThreshold"] = "00:00:02" };

    protected override void Configure(WebApplicationBuilder builder) =>
        builder.Host.UseServiceProviderFactory(new DecoratingFactory(inner => new FaultyStore(inner, _gate, Store)));

    /// <summary>Where the test opens and closes the hanging commit.</summary>
    private sealed class FaultGate
    {
        public volatile TaskCompletionSource Open = Completed();

        public static TaskCompletionSource Completed()
        {
            var t = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            t.SetResult();
            return t;
        }
    }

    private sealed class FaultyStore(ITelemetryStore inner, FaultGate gate, Store store) : ITelemetryStore
    {
        public async Task CommitAsync(IReadOnlyList<ValidatedTelemetry> batch, List<CommittedPoint> committed, CancellationToken ct)
        {
            if (batch.Any(m => m.Source.DeviceId.StartsWith("stall-", StringComparison.Ordinal))) await gate.Open.Task.WaitAsync(ct);
            if (batch.Any(m => m.Points?.Take(m.PointCount).Any(p => p.Metric == "poison") == true)) throw await RefusalAsync(store);
            await inner.CommitAsync(batch, committed, ct);
        }

        public void Forget(string deviceId) => inner.Forget(deviceId);
    }

    /// <summary>What the store's own driver throws when the database refuses a value for what it is.</summary>
    private static async Task<Exception> RefusalAsync(Store store)
    {
        try
        {
            if (store == Store.Postgres)
            {
                await using var c = new NpgsqlConnection(TestPostgres.AdminConnectionString);
                await c.OpenAsync();
                await using var cmd = new NpgsqlCommand("SELECT 1.7976931348623157e308::float8 * 10", c);
                await cmd.ExecuteScalarAsync();
            }
            else
            {
                await using var c = new SqliteConnection("Data Source=:memory:");
                await c.OpenAsync();
                await using var cmd = c.CreateCommand();
                cmd.CommandText = "CREATE TABLE t (x REAL CHECK (x < 1e308)); INSERT INTO t VALUES (1.7e308)";
                await cmd.ExecuteNonQueryAsync();
            }
        }
        catch (Exception ex) when (ex is PostgresException or SqliteException)
        {
            return ex;
        }
        throw new InvalidOperationException("the refusal did not happen");
    }

    /// <summary>Builds the host's services with every telemetry store wrapped by the decorator.</summary>
    private sealed class DecoratingFactory(Func<ITelemetryStore, ITelemetryStore> decorate) : IServiceProviderFactory<IServiceCollection>
    {
        public IServiceCollection CreateBuilder(IServiceCollection services) => services;

        public IServiceProvider CreateServiceProvider(IServiceCollection services)
        {
            var original = services.Last(d => d.ServiceType == typeof(TelemetryStores));
            services.Remove(original);
            services.AddSingleton(sp => new TelemetryStores(((TelemetryStores)original.ImplementationFactory!(sp)).All.Select(decorate).ToArray()));
            return new DefaultServiceProviderFactory().CreateServiceProvider(services);
        }
    }

    private static MqttApplicationMessage Message(string id, string json) => new MqttApplicationMessageBuilder()
        .WithTopic($"devices/{id}/telemetry").WithPayload(json).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build();

    [Test]
    public async Task A_message_the_database_refuses_is_dead_lettered_with_its_reason_and_every_other_device_is_acked()
    {
        var fleet = new List<(string Id, string Token)>();
        for (var i = 0; i < 8; i++) fleet.Add(await Hub.CreateDeviceAsync());
        var (v5, v5Token) = await Hub.CreateDeviceAsync();
        var (v311, v311Token) = await Hub.CreateDeviceAsync();
        var (http, httpToken) = await Hub.CreateDeviceAsync();
        var baseTs = DateTimeOffset.UtcNow.AddMinutes(-3).ToUnixTimeMilliseconds();

        // Eight devices with four messages in flight each, and three poison messages among them, all at once.
        var publishing = fleet.Select(d => Task.Run(async () =>
        {
            using var client = await Hub.ConnectAsync(d.Id, d.Token);
            var acks = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => client.PublishAsync(Message(d.Id, $$$"""{"ts": {{{baseTs + i}}}, "values": {"ok": {{{i}}}}}"""))));
            return acks.Select(a => a.ReasonCode).ToList();
        })).ToList();
        using var c5 = await Hub.ConnectAsync(v5, v5Token);
        using var c311 = await Hub.ConnectAsync(v311, v311Token, MqttProtocolVersion.V311);
        using var httpClient = Hub.WithBearer(httpToken);
        var poison5 = c5.PublishAsync(Message(v5, """{"poison": 1, "fine": 2}"""));
        var poison311 = c311.PublishAsync(Message(v311, """{"poison": 1}"""));
        var poisonHttp = httpClient.PostAsync($"/api/v1/devices/{http}/telemetry", Json.Body("""{"poison": 1}"""));

        var fleetAcks = await Task.WhenAll(publishing).WaitAsync(TimeSpan.FromSeconds(15));
        Assert.That(fleetAcks.SelectMany(a => a), Is.All.EqualTo(MqttClientPublishReasonCode.Success));
        var refused5 = await poison5.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.That(refused5.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.PayloadFormatInvalid));
        var expected = Store == Store.Postgres ? "the database refused it: 22003" : "the database refused it: SQLite error 19";
        Assert.That(refused5.ReasonString, Does.StartWith(expected));
        Assert.That((await poison311.WaitAsync(TimeSpan.FromSeconds(15))).ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success), "3.1.1: dead-lettered and acked");
        var refusedHttp = await poisonHttp.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.That(refusedHttp.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await refusedHttp.Content.ReadAsStringAsync(), Does.Contain(expected));

        using var admin = await Hub.AdminAsync();
        var from = Uri.EscapeDataString(DateTimeOffset.FromUnixTimeMilliseconds(baseTs - 60_000).ToString("O"));
        foreach (var (id, _) in fleet)
        {
            var raw = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=ok&resolution=raw&from={from}");
            Assert.That(raw["points"]!.AsArray(), Has.Count.EqualTo(4), $"{id}: every acknowledged message is stored");
        }
        foreach (var id in new[] { v5, v311, http })
        {
            var dead = (await admin.GetJsonAsync($"/api/v1/dead-letters?deviceId={id}"))["items"]!.AsArray().Single()!;
            Assert.That(dead["reason"]!.GetValue<string>(), Does.StartWith(expected));
            Assert.That(dead["payload"]!.GetValue<string>(), Does.Contain("poison"));
            Assert.That((await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest"))["values"]!.AsArray(), Is.Empty, "nothing of a refused message is stored");
        }
        using var anonymous = Hub.Anonymous();
        Assert.That((await anonymous.GetAsync("/health/ready")).StatusCode, Is.EqualTo(HttpStatusCode.OK), "a refused message is not an outage");
        Assert.That(await anonymous.GetStringAsync("/metrics"), Does.Match(@"iothub_commit_refused_messages_total [3-9]"));
    }

    [Test]
    public async Task A_writer_that_stops_committing_while_it_holds_messages_makes_readiness_fail_until_it_commits()
    {
        var (id, token) = await Hub.CreateDeviceAsync("stall-" + Guid.NewGuid().ToString("N")[..8]);
        using var http = Hub.Anonymous();
        Assert.That((await http.GetAsync("/health/ready")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        _gate.Open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            using var client = await Hub.ConnectAsync(id, token);
            var ack = client.PublishAsync(Message(id, """{"t": 1}"""));

            string? body = null;
            await WaitFor.ConditionAsync(async () =>
            {
                var ready = await http.GetAsync("/health/ready");
                body = await ready.Content.ReadAsStringAsync();
                return ready.StatusCode == HttpStatusCode.ServiceUnavailable;
            }, "readiness reports the stalled writer", TimeSpan.FromSeconds(15));
            Assert.That(body, Does.Contain("has not committed for").And.Contain("while holding 1 messages").And.Contain("Storage:CommitStallThreshold"));
            Assert.That(ack.IsCompleted, Is.False, "nothing is acked before it is stored");

            _gate.Open.SetResult();
            Assert.That((await ack.WaitAsync(TimeSpan.FromSeconds(15))).ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success));
            await WaitFor.ConditionAsync(async () => (await http.GetAsync("/health/ready")).StatusCode == HttpStatusCode.OK, "readiness recovers once it commits");
        }
        finally
        {
            _gate.Open.TrySetResult();
        }
    }
}
