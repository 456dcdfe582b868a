// The device side of firmware updates over HTTP, with the device token as bearer (docs/firmware.md):
//   GET  /devices/{id}/firmware/{artifactId}   the image: Range, If-Range, ETag (the SHA-256) and Accept-Ranges, so an
//                                              interrupted download resumes where it stopped; at most
//                                              Connectivity:MaxFirmwareDownloads at once, then 503 with Retry-After
//   GET  /devices/{id}/firmware/pending        the notification a device should act on (200), or 204
//   POST /devices/{id}/firmware/progress       a progress report, as on devices/{id}/firmware/progress
using IoTHub.Contracts;
using Mediator;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace IoTHub.Connectivity.Http;

/// <summary>Counts the downloads being served; a slot is held until the last byte is written.</summary>
internal sealed class FirmwareDownloadSlots
{
    private int _inUse;

    public int InUse => Volatile.Read(ref _inUse);

    public bool TryTake(int max)
    {
        if (Interlocked.Increment(ref _inUse) <= max) return true;
        Interlocked.Decrement(ref _inUse);
        return false;
    }

    public void Release() => Interlocked.Decrement(ref _inUse);
}

internal static class FirmwareOverHttp
{
    public static void Map(RouteGroupBuilder api)
    {
        api.MapGet("/devices/{id}/firmware/{artifactId:long}", DownloadAsync)
            .AllowAnonymous()
            .WithMetadata(new DeviceAuthenticatedEndpoint())
            .WithName("DownloadFirmware").WithSummary("A device downloads a firmware image (device token as bearer); Range requests resume a download").WithTags("Device API")
            .Produces(200, contentType: "application/octet-stream").Produces(206).Produces(304).ProducesProblem(401).ProducesProblem(403).ProducesProblem(404).ProducesProblem(416)
            .ProducesProblem(429).ProducesProblem(503);

        api.MapGet("/devices/{id}/firmware/pending", PendingAsync)
            .AllowAnonymous()
            .WithMetadata(new DeviceAuthenticatedEndpoint())
            .WithName("GetPendingFirmware").WithSummary("A device asks for its firmware notification {campaignId, version, url, sha256, size, attempt}; 204 when none").WithTags("Device API")
            .Produces(200).Produces(204).ProducesProblem(401).ProducesProblem(403).ProducesProblem(429);

        api.MapPost("/devices/{id}/firmware/progress", ProgressAsync)
            .AllowAnonymous()
            .WithMetadata(new DeviceAuthenticatedEndpoint())
            .Accepts<object>("application/json")
            .WithName("ReportFirmwareProgress").WithSummary("A device reports firmware progress {campaignId, status, bytes?, reason?, detail?}").WithTags("Device API")
            .Produces(204).ProducesValidationProblem().ProducesProblem(401).ProducesProblem(403).ProducesProblem(413).ProducesProblem(415).ProducesProblem(429);
    }

    private static async Task<IResult> DownloadAsync(string id, long artifactId, HttpContext http, IDeviceAuthenticator devices, IMediator mediator,
        FirmwareDownloadSlots slots, IOptions<ConnectivityOptions> options, CancellationToken ct)
    {
        var (_, denied) = await IngestTelemetryOverHttp.AuthenticateAsync(id, http, devices, ct);
        if (denied is not null) return denied;
        if (await mediator.Send(new GetFirmwareDownload(id, artifactId), ct) is not { } file || !File.Exists(file.Path))
            // 404, not 403: whether an image this device is not updating to exists is none of its business.
            return Results.Problem(statusCode: 404, title: "No such firmware update", detail: $"device {id} has no update in progress with firmware artifact {artifactId}");
        if (!slots.TryTake(options.Value.MaxFirmwareDownloads))
        {
            http.Response.Headers.RetryAfter = options.Value.FirmwareDownloadRetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Results.Problem(statusCode: 503, title: "Too many downloads",
                detail: $"at most {options.Value.MaxFirmwareDownloads} firmware downloads at once; retry after {options.Value.FirmwareDownloadRetryAfterSeconds} s");
        }
        return new HeldSlot(Results.File(file.Path, "application/octet-stream", lastModified: file.CreatedAt,
            entityTag: new EntityTagHeaderValue($"\"{file.Sha256}\""), enableRangeProcessing: true), slots);
    }

    /// <summary>Writes the file and gives the download slot back when it is done (or the device went away).</summary>
    private sealed class HeldSlot(IResult inner, FirmwareDownloadSlots slots) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            try { await inner.ExecuteAsync(httpContext); }
            finally { slots.Release(); }
        }
    }

    private static async Task<IResult> PendingAsync(string id, HttpContext http, IDeviceAuthenticator devices, IMediator mediator, CancellationToken ct)
    {
        var (_, denied) = await IngestTelemetryOverHttp.AuthenticateAsync(id, http, devices, ct);
        if (denied is not null) return denied;
        return await mediator.Send(new GetPendingFirmware(id), ct) is { } message ? Results.Bytes(message, "application/json") : Results.NoContent();
    }

    private static async Task<IResult> ProgressAsync(string id, HttpContext http, IDeviceAuthenticator devices, IMediator mediator,
        IOptions<ConnectivityOptions> options, CancellationToken ct)
    {
        var (_, denied) = await IngestTelemetryOverHttp.AuthenticateAsync(id, http, devices, ct);
        if (denied is not null) return denied;
        if (DeviceMediaType.Of(http.Request, out var charset) is var type && charset is not null)
            return Results.Problem(statusCode: 415, title: "Unsupported media type", detail: charset);
        if (type != "application/json")
            return Results.Problem(statusCode: 415, title: "Unsupported media type", detail: "Send application/json.");
        var body = await IngestTelemetryOverHttp.ReadBodyAsync(http.Request.Body, options.Value.MaxPayloadBytes, ct);
        if (body is null) return Results.Problem(statusCode: 413, title: "Payload too large", detail: $"The limit is {options.Value.MaxPayloadBytes} bytes.");
        return await mediator.Send(new RecordFirmwareProgress(id, body), ct) is { } error
            ? Results.ValidationProblem(new Dictionary<string, string[]> { ["payload"] = [error] }, title: "Invalid firmware progress")
            : Results.NoContent();
    }
}
