// /api/v1/firmware (artifacts), /api/v1/firmware-campaigns and /api/v1/devices/{id}/firmware: operators write, viewers
// read (docs/firmware.md). The device-facing endpoints (download, pending, progress) are Connectivity's.
using System.Security.Claims;
using IoTHub.Contracts;
using IoTHub.Firmware.Artifacts;
using IoTHub.Firmware.Campaigns;
using IoTHub.Firmware.Rollout;
using Mediator;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace IoTHub.Firmware;

internal static class FirmwareEndpoints
{
    public static void Map(RouteGroupBuilder api)
    {
        var g = api.MapGroup("").WithTags("Firmware");

        g.MapPost("/firmware", async Task<Results<Created<FirmwareArtifactView>, ValidationProblem, ConflictProblem, ContentTooLargeProblem, UnsupportedMediaTypeProblem>> (
                HttpContext http, string? version, string? hardwareModel, string? profile, string? notes, string? signature,
                ClaimsPrincipal user, IMediator mediator, IOptions<FirmwareOptions> options, CancellationToken ct) =>
            {
                var max = options.Value.MaxArtifactBytes;
                if (http.Request.ContentType?.Split(';')[0].Trim().ToLowerInvariant() != "application/octet-stream")
                    return new UnsupportedMediaTypeProblem("Unsupported media type", "Send the image as the body, Content-Type: application/octet-stream.");
                if (http.Request.ContentLength > max) return TooLarge(max);
                // With a Content-Length (checked above) Kestrel's limit is a backstop. A chunked body is counted by the upload itself,
                // which stops after max bytes with a 413: Kestrel's own limit of max + 1 threw on chunked images even of exactly max
                // bytes, and its exception was a 500.
                if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
                    limit.MaxRequestBodySize = http.Request.ContentLength is null ? null : max + 1;
                var result = await mediator.Send(new UploadFirmwareCommand(http.Request.Body, version, hardwareModel, profile, notes, signature, Actor(user)), ct);
                return result.Outcome switch
                {
                    UploadFirmwareOutcome.Created => TypedResults.Created($"/api/v1/firmware/{result.Artifact!.Id}", result.Artifact),
                    UploadFirmwareOutcome.Conflict => new ConflictProblem("Firmware exists",
                        $"version {version} for this hardware model and profile is already stored; delete it first or use another version"),
                    UploadFirmwareOutcome.TooLarge => TooLarge(max),
                    _ => TypedResults.ValidationProblem(result.Errors),
                };
            })
            // No .Accepts(...): routing would answer 415 to another content type before authorization answers 401 or 403.
            .RequireAuthorization("operator").DisableAntiforgery()
            .WithName("UploadFirmware").WithSummary("Upload a firmware image (raw body; version, hardwareModel, profile, notes, signature in the query)");

        g.MapGet("/firmware", async (IMediator mediator, CancellationToken ct) =>
                TypedResults.Ok(new Page<FirmwareArtifactView>(await mediator.Send(new ListFirmwareArtifactsQuery(), ct), null)))
            .WithName("ListFirmware").WithSummary("Every firmware artifact, newest first, in one page");

        g.MapGet("/firmware/{id:long}", async Task<Results<Ok<FirmwareArtifactView>, NotFoundProblem>> (long id, IMediator mediator, CancellationToken ct) =>
                await mediator.Send(new GetFirmwareArtifactQuery(id), ct) is { } a ? TypedResults.Ok(a) : new NotFoundProblem($"Firmware artifact {id} not found"))
            .WithName("GetFirmware").WithSummary("One firmware artifact");

        g.MapDelete("/firmware/{id:long}", async Task<Results<NoContent, NotFoundProblem, ConflictProblem>> (long id, IMediator mediator, CancellationToken ct) =>
                await mediator.Send(new DeleteFirmwareArtifactCommand(id), ct) switch
                {
                    DeleteFirmwareArtifactOutcome.Deleted => TypedResults.NoContent(),
                    DeleteFirmwareArtifactOutcome.InUse => new ConflictProblem("Firmware in use", "a draft, running or paused campaign uses this artifact"),
                    _ => new NotFoundProblem($"Firmware artifact {id} not found"),
                })
            .RequireAuthorization("operator").WithName("DeleteFirmware").WithSummary("Delete a firmware artifact and its file");

        MapCampaigns(g);

        g.MapGet("/devices/{id}/firmware", async (string id, IMediator mediator, CancellationToken ct) => TypedResults.Ok(await mediator.Send(new GetDeviceFirmwareQuery(id), ct)))
            .WithName("GetDeviceFirmware").WithSummary("A device's reported firmware version and its update history");
    }

    private static void MapCampaigns(RouteGroupBuilder g)
    {
        g.MapPost("/firmware-campaigns", async Task<Results<Created<CampaignView>, ValidationProblem>> (CampaignDefinition body, ClaimsPrincipal user,
                IMediator mediator, CancellationToken ct) =>
            {
                var saved = await mediator.Send(new SaveCampaignCommand(null, body, Actor(user)), ct);
                return saved.Outcome == SaveCampaignOutcome.Saved
                    ? TypedResults.Created($"/api/v1/firmware-campaigns/{saved.Campaign!.Id}", saved.Campaign)
                    : TypedResults.ValidationProblem(saved.Errors);
            })
            .RequireAuthorization("operator").WithName("CreateFirmwareCampaign").WithSummary("Create a firmware campaign (a draft)");

        g.MapPost("/firmware-campaigns/preview", async Task<Results<Ok<CampaignPreview>, ValidationProblem>> (CampaignDefinition body, IMediator mediator, CancellationToken ct) =>
            {
                var (preview, errors) = await mediator.Send(new PreviewCampaignQuery(body), ct);
                return preview is not null ? TypedResults.Ok(preview) : TypedResults.ValidationProblem(errors);
            })
            .WithName("PreviewFirmwareCampaign").WithSummary("The devices a definition would target now, per wave; nothing is saved");

        g.MapGet("/firmware-campaigns", async Task<Results<Ok<Page<CampaignView>>, ValidationProblem>> (string? state, IMediator mediator, CancellationToken ct) =>
                state is not null && !CampaignStates.All.Contains(state)
                    ? TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["state"] = ["state is one of " + string.Join(", ", CampaignStates.All)] })
                    : TypedResults.Ok(new Page<CampaignView>(await mediator.Send(new ListCampaignsQuery(state), ct), null)))
            .WithName("ListFirmwareCampaigns").WithSummary("Firmware campaigns, newest first (at most 500)");

        g.MapGet("/firmware-campaigns/{id:long}", async Task<Results<Ok<CampaignView>, NotFoundProblem>> (long id, IMediator mediator, CancellationToken ct) =>
                await mediator.Send(new GetCampaignQuery(id), ct) is { } c ? TypedResults.Ok(c) : NotFound(id))
            .WithName("GetFirmwareCampaign").WithSummary("One firmware campaign with its funnel per state and wave");

        g.MapPut("/firmware-campaigns/{id:long}", async Task<Results<Ok<CampaignView>, ValidationProblem, NotFoundProblem, ConflictProblem>> (long id,
                CampaignDefinition body, ClaimsPrincipal user, IMediator mediator, CancellationToken ct) =>
            {
                var saved = await mediator.Send(new SaveCampaignCommand(id, body, Actor(user)), ct);
                return saved.Outcome switch
                {
                    SaveCampaignOutcome.Saved => TypedResults.Ok(saved.Campaign!),
                    SaveCampaignOutcome.NotFound => NotFound(id),
                    SaveCampaignOutcome.NotDraft => new ConflictProblem("Not a draft", "only a draft campaign can be changed"),
                    _ => TypedResults.ValidationProblem(saved.Errors),
                };
            })
            .RequireAuthorization("operator").WithName("ReplaceFirmwareCampaign").WithSummary("Replace a draft campaign's definition");

        g.MapDelete("/firmware-campaigns/{id:long}", async Task<Results<NoContent, NotFoundProblem, ConflictProblem>> (long id, IMediator mediator, CancellationToken ct) =>
                await mediator.Send(new DeleteCampaignCommand(id), ct) switch
                {
                    CampaignActionOutcome.Done => TypedResults.NoContent(),
                    CampaignActionOutcome.WrongState => new ConflictProblem("Campaign is running", "pause and abort it first, or wait until it completes"),
                    _ => NotFound(id),
                })
            .RequireAuthorization("operator").WithName("DeleteFirmwareCampaign").WithSummary("Delete a draft, completed or aborted campaign");

        foreach (var action in new[] { "start", "pause", "resume", "abort", "approve" })
        {
            g.MapPost($"/firmware-campaigns/{{id:long}}/{action}", async Task<Results<Ok<CampaignView>, NotFoundProblem, ConflictProblem>> (long id,
                    ClaimsPrincipal user, IMediator mediator, CancellationToken ct) =>
                {
                    var outcome = await mediator.Send(new CampaignActionCommand(id, action, Actor(user)), ct);
                    var view = await mediator.Send(new GetCampaignQuery(id), ct);
                    return outcome switch
                    {
                        CampaignActionOutcome.Done => TypedResults.Ok(view!),
                        CampaignActionOutcome.WrongState => new ConflictProblem($"Cannot {action} the campaign", $"the campaign is {view?.State}"),
                        CampaignActionOutcome.ArtifactMissing => new ConflictProblem($"Cannot {action} the campaign", "its firmware artifact was deleted"),
                        _ => NotFound(id),
                    };
                })
                .RequireAuthorization("operator").WithName($"{char.ToUpperInvariant(action[0])}{action[1..]}FirmwareCampaign")
                .WithSummary(action switch
                {
                    "start" => "Start a draft: devices are assigned to waves and the first wave is notified",
                    "pause" => "Pause: no new device is notified; devices already updating finish",
                    "resume" => "Resume a paused campaign; its failure threshold counts from now",
                    "abort" => "Abort: devices not yet started are canceled; devices already updating finish",
                    _ => "Let the next wave start (a wave with requireApproval)",
                });
        }

        g.MapGet("/firmware-campaigns/{id:long}/devices", async Task<Results<Ok<Page<CampaignDeviceView>>, ValidationProblem, NotFoundProblem>> (long id,
                string? state, int? wave, string? cursor, int? limit, IMediator mediator, CancellationToken ct) =>
            {
                if (PageLimit.Check(limit, 100, 1000, out var take) is { } bad) return bad;
                if (state is not null && !DeviceUpdateStates.All.Contains(state))
                    return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["state"] = ["state is one of " + string.Join(", ", DeviceUpdateStates.All)] });
                return await mediator.Send(new ListCampaignDevicesQuery(id, state, wave, cursor, take), ct) is { } page ? TypedResults.Ok(page) : NotFound(id);
            })
            .WithName("ListFirmwareCampaignDevices").WithSummary("A campaign's devices by id, optionally in one state or wave");
    }

    private static ContentTooLargeProblem TooLarge(long max) => new("Firmware too large", $"the limit is {max} bytes (Firmware:MaxArtifactBytes)");

    private static NotFoundProblem NotFound(long id) => new($"Firmware campaign {id} not found");

    private static string Actor(ClaimsPrincipal user) => user.Identity?.Name ?? "?";
}
