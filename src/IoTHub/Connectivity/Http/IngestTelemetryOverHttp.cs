// POST /api/v1/devices/{id}/telemetry with `Authorization: Bearer <device token>`: 202 once durably stored,
// 400 problem+json naming each invalid field (the message is dead-lettered), 401/403/413/415 as named.
using IoTHub.Contracts;
using Microsoft.Extensions.Options;

namespace IoTHub.Connectivity.Http;

/// <summary>The log category of the HTTP device endpoints.</summary>
internal sealed class DeviceApiLog;

internal static class IngestTelemetryOverHttp
{
    public static void Map(RouteGroupBuilder api) =>
        api.MapPost("/devices/{id}/telemetry", HandleAsync)
            .AllowAnonymous()
            .WithMetadata(new DeviceAuthenticatedEndpoint())
            .Accepts<object>("application/json", "application/cbor")
            .WithName("SendTelemetry").WithSummary("A device sends telemetry (device token as bearer); 202 after durable storage").WithTags("Device API")
            // Kept by hand: eight kinds of response (the device check alone gives 401, 403 and 429) are more than Results<...> can name.
            .Produces(202).ProducesValidationProblem().ProducesProblem(401).ProducesProblem(403).ProducesProblem(413).ProducesProblem(415).ProducesProblem(429).ProducesProblem(503);

    private static async Task<IResult> HandleAsync(string id, HttpContext http, IDeviceAuthenticator devices, IngestGate gate,
        IOptions<ConnectivityOptions> options, CancellationToken ct)
    {
        var device = await AuthenticateAsync(id, http, devices, ct);
        if (device.Problem is { } denied) return denied;

        var mediaType = DeviceMediaType.Of(http.Request, out var charset);
        if (charset is not null) return Results.Problem(statusCode: 415, title: "Unsupported media type", detail: charset);
        if (mediaType is not ("application/json" or "application/cbor"))
            return Results.Problem(statusCode: 415, title: "Unsupported media type", detail: "Send application/json (or application/cbor).");
        var max = options.Value.MaxPayloadBytes;
        if (http.Request.ContentLength > max)
            return Results.Problem(statusCode: 413, title: "Payload too large", detail: $"The limit is {max} bytes.");
        var body = await ReadBodyAsync(http.Request.Body, max, ct);
        if (body is null)
            return Results.Problem(statusCode: 413, title: "Payload too large", detail: $"The limit is {max} bytes.");

        var outcome = await gate.SubmitAsync(id, TelemetryProtocol.Http, mediaType == "application/cbor" ? PayloadFormat.Cbor : PayloadFormat.Json,
            body, awaitCommit: true, ct);
        return outcome.Status switch
        {
            IngestStatus.Stored => Results.Accepted(),
            IngestStatus.Rejected => Results.ValidationProblem(
                (outcome.Errors ?? []).GroupBy(e => e.Field.Length == 0 ? "payload" : e.Field).ToDictionary(g => g.Key, g => g.Select(e => e.Message).ToArray()),
                title: "Invalid telemetry", detail: outcome.Reason + " (kept in the dead-letter store)"),
            _ => Results.Problem(statusCode: 503, title: "Unavailable", detail: outcome.Reason),
        };
    }

    /// <summary>Checks the device token, slows down repeated failures from one address, and applies the device's message rate.</summary>
    internal static async ValueTask<(DeviceIdentity? Device, IResult? Problem)> AuthenticateAsync(string id, HttpContext http, IDeviceAuthenticator devices, CancellationToken ct)
    {
        var (device, problem, why) = await CheckTokenAsync(id, http, devices, ct);
        if (problem is not null)
        {
            var remote = http.Connection.RemoteIpAddress?.ToString();
            http.RequestServices.GetRequiredService<LogThrottle>().Write(http.RequestServices.GetRequiredService<ILogger<DeviceApiLog>>(),
                RefusalLines.HttpDeviceLogin, remote, Printable(id), remote, why!);
            if (problem is IStatusCodeHttpResult { StatusCode: 401 })
                await Task.Delay(http.RequestServices.GetRequiredService<Mqtt.AuthThrottle>().Failed(http.Connection.RemoteIpAddress is { } ip ? new System.Net.IPEndPoint(ip, 0) : null), ct);
            return (null, problem);
        }
        var rate = http.RequestServices.GetRequiredService<DeviceRateLimiter>();
        if (!rate.TryAcquire(id))
        {
            http.Response.Headers.RetryAfter = "1";
            return (null, Results.Problem(statusCode: 429, title: "Too many requests", detail: $"A device may send at most {rate.Limit} messages a second."));
        }
        return (device, null);
    }

    private static async ValueTask<(DeviceIdentity? Device, IResult? Problem, string? Why)> CheckTokenAsync(string id, HttpContext http, IDeviceAuthenticator devices, CancellationToken ct)
    {
        var auth = http.Request.Headers.Authorization.ToString();
        if (!auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            http.Response.Headers.WWWAuthenticate = "Bearer";
            return (null, Results.Problem(statusCode: 401, title: "Device token required", detail: "Send Authorization: Bearer <device token>."), "no device token");
        }
        var device = await devices.AuthenticateAsync(id, auth["Bearer ".Length..].Trim(), ct);
        if (device is null)
        {
            http.Response.Headers.WWWAuthenticate = "Bearer error=\"invalid_token\"";
            return (null, Results.Problem(statusCode: 401, title: "Wrong device id or token"), "wrong device id or token");
        }
        if (!device.Enabled) return (null, Results.Problem(statusCode: 403, title: "Device is disabled"), "device is disabled");
        return (device, null, null);
    }

    /// <summary>A device id from the URL, fit for a log line: cut to 128 characters, control characters replaced.</summary>
    private static string Printable(string s) => new(s.Take(128).Select(c => char.IsControl(c) ? '?' : c).ToArray());

    /// <summary>Reads at most <paramref name="max"/> bytes; null when the body is longer.</summary>
    internal static async Task<byte[]?> ReadBodyAsync(Stream body, int max, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int n;
        while ((n = await body.ReadAsync(chunk, ct)) > 0)
        {
            if (buffer.Length + n > max) return null;
            buffer.Write(chunk, 0, n);
        }
        return buffer.ToArray();
    }
}
