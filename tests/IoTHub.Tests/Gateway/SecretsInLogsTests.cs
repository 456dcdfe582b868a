// Runs every path that handles a secret (logins right and wrong, device tokens over MQTT and HTTP, rotation,
// API keys, users, app MQTT logins) with all logging at Trace, and then looks for each secret in everything logged.
using System.Collections.Concurrent;
using System.Net.Http.Json;
using IoTHub.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Gateway;

[TestFixture(Store.Sqlite)]
public sealed class SecretsInLogsTests(Store store) : HubFixture(store)
{
    private readonly ConcurrentQueue<string> _logged = new();

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?> { ["Logging:LogLevel:Default"] = "Trace" };

    protected override void Configure(WebApplicationBuilder builder)
    {
        builder.Logging.SetMinimumLevel(LogLevel.Trace);
        builder.Logging.AddProvider(new CapturingProvider(_logged));
    }

    [Test]
    public async Task No_token_password_or_key_appears_in_any_log_line()
    {
        var secrets = new List<string> { HubHost.AdminPassword };
        using var anonymous = Hub.Anonymous();
        await anonymous.PostAsJsonAsync("/api/v1/auth/token", new { username = "admin", password = "Wrong-Password-12345" });
        secrets.Add("Wrong-Password-12345");
        var bearer = await Hub.TokenAsync("admin", HubHost.AdminPassword);
        secrets.Add(bearer);
        using var admin = Hub.WithBearer(bearer);

        var (id, token) = await Hub.CreateDeviceAsync();
        secrets.Add(token);
        using (var device = await Hub.ConnectAsync(id, token, MqttProtocolVersion.V311))
        {
            await device.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry").WithPayload("""{"t": 1}""")
                .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        }
        using (var http = Hub.WithBearer(token)) await http.PostAsync($"/api/v1/devices/{id}/telemetry", Json.Body("""{"t": 2}"""));
        using (var wrong = new MqttClientFactory().CreateMqttClient()) await MqttConnect.TryAsync(wrong, Hub.MqttOptions(id, token + "x"));
        secrets.Add(token + "x");
        using (var wrongHttp = Hub.WithBearer("not-" + token)) await wrongHttp.PostAsync($"/api/v1/devices/{id}/telemetry", Json.Body("{}"));

        var rotated = (await (await admin.PostAsync($"/api/v1/devices/{id}/rotate-token", null)).ReadJsonAsync())["token"]!.GetValue<string>();
        secrets.Add(rotated);
        using (var again = await Hub.ConnectAsync(id, rotated)) await again.DisconnectAsync();

        var key = await Hub.CreateApiKeyAsync("operator");
        secrets.Add(key);
        using (var app = await Hub.ConnectAsync("apikey", key)) await app.SubscribeAsync("devices/+/telemetry");
        using (var keyed = Hub.WithApiKey(key)) await keyed.GetAsync("/api/v1/devices");
        using (var badKey = Hub.WithApiKey(key + "y")) await badKey.GetAsync("/api/v1/devices");
        secrets.Add(key + "y");

        const string userPassword = "Operator-Password-67890";
        secrets.Add(userPassword);
        await admin.PostAsJsonAsync("/api/v1/users", new { username = "olivia", password = userPassword, role = "operator" });
        secrets.Add(await Hub.TokenAsync("olivia", userPassword));

        await Task.Delay(500); // let background writers log what they log
        var logged = _logged.ToArray();
        Assert.That(logged, Has.Length.GreaterThan(50), "the capture works and Trace logging is on");
        Assert.That(logged.Any(l => l.Contains(id, StringComparison.Ordinal)), Is.True, "device ids are logged, so a leak would show");
        foreach (var secret in secrets)
            Assert.That(logged.Where(l => l.Contains(secret, StringComparison.Ordinal)), Is.Empty, $"a secret of {secret.Length} characters was logged");
    }

    private sealed class CapturingProvider(ConcurrentQueue<string> sink) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Capture(categoryName, sink);

        public void Dispose()
        {
        }

        private sealed class Capture(string category, ConcurrentQueue<string> sink) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull
            {
                sink.Enqueue($"{category} scope: {state}");
                return null;
            }

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                var values = state is IEnumerable<KeyValuePair<string, object?>> pairs ? string.Join(' ', pairs.Select(p => $"{p.Key}={p.Value}")) : "";
                sink.Enqueue($"{category} {logLevel}: {formatter(state, exception)} {values} {exception}");
            }
        }
    }
}
