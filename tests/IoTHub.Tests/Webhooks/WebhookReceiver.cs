// A webhook receiver for the tests: Kestrel on 127.0.0.1, recording every request, answering per path from a script
// (e.g. 500, 500, then 200), and able to stop and start again on the same port.
using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace IoTHub.Tests.Webhooks;

public sealed record ReceivedWebhook(string Path, string? Id, string? Timestamp, string? Signature, byte[] Body, DateTimeOffset ReceivedAt)
{
    public JsonNode Json => JsonNode.Parse(Body)!;
    public string Type => Json["type"]!.GetValue<string>();
    public JsonNode Data => Json["data"]!;
}

/// <summary>An answer the receiver gives: a status, optionally a Retry-After in seconds and a delay before answering.</summary>
public sealed record ScriptedAnswer(int Status, int? RetryAfterSeconds = null, TimeSpan? Delay = null);

public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly ConcurrentQueue<ReceivedWebhook> _received = new();
    private readonly ConcurrentDictionary<string, ConcurrentQueue<ScriptedAnswer>> _scripts = new();
    private readonly ConcurrentDictionary<string, ScriptedAnswer> _always = new();
    private WebApplication? _app;

    public int Port { get; private set; }
    public IReadOnlyList<ReceivedWebhook> Received => _received.ToArray();

    public static async Task<WebhookReceiver> StartAsync(int port = 0)
    {
        var receiver = new WebhookReceiver { Port = port };
        await receiver.StartAgainAsync();
        return receiver;
    }

    public string Url(string path) => $"http://127.0.0.1:{Port}/{path.TrimStart('/')}";

    /// <summary>The next requests to <paramref name="path"/> get these answers, in order; then 200.</summary>
    public void Script(string path, params ScriptedAnswer[] answers) =>
        _scripts["/" + path.TrimStart('/')] = new ConcurrentQueue<ScriptedAnswer>(answers);

    /// <summary>Every request to <paramref name="path"/> gets this answer.</summary>
    public void Always(string path, ScriptedAnswer answer) => _always["/" + path.TrimStart('/')] = answer;

    public IReadOnlyList<ReceivedWebhook> At(string path) => Received.Where(r => r.Path == "/" + path.TrimStart('/')).ToList();

    public async Task<IReadOnlyList<ReceivedWebhook>> WaitForAsync(Func<IReadOnlyList<ReceivedWebhook>, bool> done, TimeSpan? timeout = null, string? what = null)
    {
        var until = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (DateTime.UtcNow < until)
        {
            var now = Received;
            if (done(now)) return now;
            await Task.Delay(50);
        }
        Assert.Fail($"the receiver did not get {what ?? "what was expected"} in time; it got: {string.Join(", ", Received.Select(r => r.Path + " " + r.Type))}");
        return [];
    }

    public async Task StartAgainAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{Port}");
        var app = builder.Build();
        app.MapPost("/{**path}", async (HttpContext http) =>
        {
            using var body = new MemoryStream();
            await http.Request.Body.CopyToAsync(body);
            var path = http.Request.Path.Value ?? "/";
            var h = http.Request.Headers;
            _received.Enqueue(new ReceivedWebhook(path, h["webhook-id"].FirstOrDefault(), h["webhook-timestamp"].FirstOrDefault(),
                h["webhook-signature"].FirstOrDefault(), body.ToArray(), DateTimeOffset.UtcNow));
            var answer = _scripts.TryGetValue(path, out var q) && q.TryDequeue(out var next) ? next : _always.GetValueOrDefault(path) ?? new ScriptedAnswer(200);
            if (answer.Delay is { } delay) await Task.Delay(delay);
            if (answer.RetryAfterSeconds is { } s) http.Response.Headers.RetryAfter = s.ToString();
            http.Response.StatusCode = answer.Status;
        });
        await app.StartAsync();
        Port = new Uri(app.Urls.First()).Port;
        _app = app;
    }

    public async Task StopAsync()
    {
        if (_app is null) return;
        await _app.StopAsync();
        await _app.DisposeAsync();
        _app = null;
    }

    public async ValueTask DisposeAsync() => await StopAsync();
}
