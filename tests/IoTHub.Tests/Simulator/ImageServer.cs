// A firmware image server for the simulator's tests: Kestrel on 127.0.0.1 serving one image with ASP.NET Core's own
// range handling (Accept-Ranges, 206, If-Range against the SHA-256 ETag), recording each request's Range and
// Authorization, and able to answer 503 + Retry-After or break a response off mid-body.
using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Net.Http.Headers;

namespace IoTHub.Tests.Simulator;

public sealed class ImageServer : IAsyncDisposable
{
    public const string Path = "/api/v1/devices/sim-0/firmware/3";

    private readonly WebApplication _app;
    private readonly ConcurrentQueue<(string Range, string Authorization)> _requests = new();
    private int _busyAnswers;
    private long _breakAt = -1;

    private ImageServer(byte[] image, WebApplication app)
    {
        Image = image;
        _app = app;
        app.MapGet(Path, ServeAsync);
    }

    public byte[] Image { get; }
    public string Sha256 => Convert.ToHexStringLower(SHA256.HashData(Image));
    public Uri Address { get; private set; } = null!;
    public Uri ImageUrl => new(Address, Path);

    /// <summary>The Range header of each request, in order ("" when it had none).</summary>
    public IReadOnlyList<string> Ranges => _requests.Select(r => r.Range).ToList();
    public IReadOnlyList<string> Authorizations => _requests.Select(r => r.Authorization).ToList();

    public static async Task<ImageServer> StartAsync(int size)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var image = new byte[size];
        new Random(size).NextBytes(image);
        var server = new ImageServer(image, builder.Build());
        await server._app.StartAsync();
        server.Address = new Uri(server._app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        return server;
    }

    /// <summary>The next <paramref name="times"/> requests get 503 with Retry-After: 1.</summary>
    public void AnswerBusy(int times) => _busyAnswers = times;

    /// <summary>The next response that covers byte <paramref name="offset"/> stops just before it: the connection is
    /// cut mid-body.</summary>
    public void BreakOnceAt(long offset) => _breakAt = offset;

    private async Task ServeAsync(HttpContext http)
    {
        _requests.Enqueue((http.Request.Headers.Range.ToString(), http.Request.Headers.Authorization.ToString()));
        if (Interlocked.Decrement(ref _busyAnswers) >= 0)
        {
            http.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            http.Response.Headers.RetryAfter = "1";
            return;
        }
        var range = http.Request.GetTypedHeaders().Range?.Ranges.SingleOrDefault();
        var breakAt = Interlocked.Read(ref _breakAt);
        if (range is { From: { } from, To: { } to } && breakAt >= from && breakAt <= to && Interlocked.CompareExchange(ref _breakAt, -1, breakAt) == breakAt)
        {
            http.Response.StatusCode = StatusCodes.Status206PartialContent;
            http.Response.Headers.ContentRange = $"bytes {from}-{to}/{Image.Length}";
            http.Response.ContentLength = to - from + 1;
            await http.Response.Body.WriteAsync(Image.AsMemory((int)from, (int)(breakAt - from)));
            await http.Response.Body.FlushAsync();
            // Give the bytes time to arrive before the reset: a reset can drop data the client has not read yet.
            await Task.Delay(200);
            http.Abort();
            return;
        }
        await Results.Bytes(Image, "application/octet-stream", entityTag: new EntityTagHeaderValue($"\"{Sha256}\""), enableRangeProcessing: true)
            .ExecuteAsync(http);
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
