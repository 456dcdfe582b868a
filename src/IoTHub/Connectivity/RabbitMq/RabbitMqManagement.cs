// Closing a device's live connections on RabbitMQ, which AMQP cannot do: RabbitMQ's management API (the management
// plugin) lists connections with their user and closes one by name. Used when a token is rotated, a device disabled or
// deleted, or an API key revoked, so that the change takes effect at once, as in embedded mode.
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;

namespace IoTHub.Connectivity.RabbitMq;

internal sealed class RabbitMqManagement(IHttpClientFactory http, IOptions<RabbitMqOptions> options, TimeProvider time, ILogger<RabbitMqManagement> log)
{
    /// <summary>The named HTTP client (with the standard resilience handler).</summary>
    public const string HttpClientName = "rabbitmq-management";

    private int _warned;

    /// <summary>Closes every connection RabbitMQ holds for <paramref name="user"/>, on every node, that opened before now.
    /// The management API lists a new connection only after its next statistics round (every 5 s by default), so the
    /// list is read again for <see cref="Window"/>; connections opened after the call (a device back with its new token)
    /// are left alone. Runs in the background; a failure is logged, not thrown (the user is refused at its next login
    /// either way).</summary>
    public Task CloseConnectionsOfAsync(string user, string reason)
    {
        if (options.Value.ManagementUri is not { Length: > 0 } text)
        {
            if (Interlocked.Exchange(ref _warned, 1) == 0)
                log.LogWarning("RabbitMq:ManagementUri is not set: a revoked device keeps its open RabbitMQ connection until it reconnects");
            return Task.CompletedTask;
        }
        var before = time.GetUtcNow().ToUnixTimeMilliseconds();
        _ = Task.Run(() => CloseAsync(new Uri(text), user, reason, before));
        return Task.CompletedTask;
    }

    /// <summary>How long a revocation keeps looking for the user's connections.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(12);

    private async Task CloseAsync(Uri uri, string user, string reason, long before)
    {
        using var client = http.CreateClient(HttpClientName);
        client.BaseAddress = new Uri(uri.GetLeftPart(UriPartial.Authority));
        if (uri.UserInfo is { Length: > 0 } info)
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
                Convert.ToBase64String(Encoding.UTF8.GetBytes(Uri.UnescapeDataString(info))));
        var closed = new HashSet<string>(StringComparer.Ordinal);
        var until = time.GetUtcNow() + Window;
        while (true)
        {
            try
            {
                using var list = await client.GetAsync("/api/connections?columns=name,user,connected_at");
                list.EnsureSuccessStatusCode();
                using var doc = JsonDocument.Parse(await list.Content.ReadAsStreamAsync());
                foreach (var c in doc.RootElement.EnumerateArray())
                {
                    if (c.GetProperty("user").GetString() != user || c.GetProperty("name").GetString() is not { } name || closed.Contains(name)) continue;
                    if (c.TryGetProperty("connected_at", out var at) && at.ValueKind == JsonValueKind.Number && at.GetInt64() > before) continue;
                    using var request = new HttpRequestMessage(HttpMethod.Delete, "/api/connections/" + Uri.EscapeDataString(name));
                    request.Headers.Add("X-Reason", reason);
                    using var response = await client.SendAsync(request);
                    if (response.IsSuccessStatusCode || response.StatusCode == System.Net.HttpStatusCode.NotFound) closed.Add(name);
                    else log.LogWarning("RabbitMQ did not close connection {Connection} of {User}: HTTP {Status}", name, user, (int)response.StatusCode);
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or JsonException or TaskCanceledException or KeyNotFoundException or InvalidOperationException)
            {
                log.LogWarning("Could not close the RabbitMQ connections of {User} through the management API: {Reason}", user, ex.Message);
                return;
            }
            if (time.GetUtcNow() >= until) break;
            await Task.Delay(TimeSpan.FromSeconds(2), time);
        }
        if (closed.Count > 0) log.LogInformation("Closed {Count} RabbitMQ connections of {User}: {Reason}", closed.Count, user, reason);
    }
}
