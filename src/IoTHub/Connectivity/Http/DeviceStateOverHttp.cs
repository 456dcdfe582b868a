// The device twin for devices that speak HTTP: POST a merge patch to their reported state, GET their desired
// state. Authenticated with the device token as bearer, like telemetry.
using IoTHub.Contracts;
using Mediator;
using Microsoft.Extensions.Options;

namespace IoTHub.Connectivity.Http;

internal static class DeviceStateOverHttp
{
    public sealed record ReportedVersion(long Version);

    public static void Map(RouteGroupBuilder api)
    {
        api.MapPost("/devices/{id}/state/reported", ReportAsync)
            .AllowAnonymous()
            .WithMetadata(new DeviceAuthenticatedEndpoint())
            .Accepts<object>("application/json", "application/merge-patch+json")
            .WithName("ReportState").WithSummary("A device merges a JSON object into its reported state (device token as bearer)").WithTags("Device API")
            // Kept by hand, like SendTelemetry's: the shared device check answers 401, 403 and 429 as an untyped IResult.
            .Produces<ReportedVersion>().ProducesValidationProblem().ProducesProblem(401).ProducesProblem(403).ProducesProblem(413).ProducesProblem(415);

        api.MapGet("/devices/{id}/state/desired", DesiredAsync)
            .AllowAnonymous()
            .WithMetadata(new DeviceAuthenticatedEndpoint())
            .WithName("GetDesiredStateForDevice").WithSummary("A device reads its desired state {\"version\", \"state\"} (device token as bearer)").WithTags("Device API")
            .Produces(200).ProducesProblem(401).ProducesProblem(403);
    }

    private static async Task<IResult> ReportAsync(string id, HttpContext http, IDeviceAuthenticator devices, IMediator mediator,
        IOptions<ConnectivityOptions> options, CancellationToken ct)
    {
        var (_, denied) = await IngestTelemetryOverHttp.AuthenticateAsync(id, http, devices, ct);
        if (denied is not null) return denied;
        var mediaType = DeviceMediaType.Of(http.Request, out var charset);
        if (charset is not null) return Results.Problem(statusCode: 415, title: "Unsupported media type", detail: charset);
        if (mediaType is not ("application/json" or "application/merge-patch+json"))
            return Results.Problem(statusCode: 415, title: "Unsupported media type", detail: "Send application/json.");
        var body = await IngestTelemetryOverHttp.ReadBodyAsync(http.Request.Body, options.Value.MaxPayloadBytes, ct);
        if (body is null) return Results.Problem(statusCode: 413, title: "Payload too large", detail: $"The limit is {options.Value.MaxPayloadBytes} bytes.");
        var outcome = await mediator.Send(new ReportDeviceState(id, body), ct);
        return outcome.Version is { } v
            ? Results.Ok(new ReportedVersion(v))
            : Results.ValidationProblem(new Dictionary<string, string[]> { ["payload"] = [outcome.Error ?? "invalid"] }, title: "Invalid reported state");
    }

    private static async Task<IResult> DesiredAsync(string id, HttpContext http, IDeviceAuthenticator devices, IMediator mediator, CancellationToken ct)
    {
        var (_, denied) = await IngestTelemetryOverHttp.AuthenticateAsync(id, http, devices, ct);
        if (denied is not null) return denied;
        var message = await mediator.Send(new GetDesiredStateMessage(id), ct) ?? """{"version":0,"state":{}}"""u8.ToArray();
        return Results.Bytes(message, "application/json");
    }
}
