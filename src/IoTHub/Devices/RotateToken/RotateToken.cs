using IoTHub.Contracts;
using IoTHub.Devices.GetDevice;
using IoTHub.Storage;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Devices.RotateToken;

/// <summary>Gives a device a new token; null when no device has this id.</summary>
public sealed record RotateTokenCommand(string Id) : IRequest<RotatedToken?>;

/// <summary>The answer to <c>POST /api/v1/devices/{id}/rotate-token</c>: <c>{"token"}</c>, the new token (256 random bits,
/// 43 base64url characters), shown this once. The old one is refused from now on and the device's live connections are
/// dropped (CONTRACT.md, "Identity").</summary>
public sealed record RotatedToken(string Token);

/// <summary>A new token, shown once; the old one stops working at once and live connections are dropped.</summary>
internal sealed class RotateTokenHandler(HubDb db, IMediator mediator, DevicePsk psk) : IRequestHandler<RotateTokenCommand, RotatedToken?>
{
    public async ValueTask<RotatedToken?> Handle(RotateTokenCommand c, CancellationToken ct)
    {
        var token = Secret.New();
        var hash = Secret.Hash(token);
        var encrypted = psk.Protect(token);
        // The DTLS key changes with the hash: a device created before DTLS support gets one here.
        var n = await db.Set<Device>().Where(d => d.Id == c.Id)
            .ExecuteUpdateAsync(s => s.SetProperty(d => d.TokenHash, hash).SetProperty(d => d.DtlsPsk, encrypted), ct);
        if (n == 0) return null;
        await mediator.Publish(new DeviceCredentialsRevoked(c.Id), ct);
        return new RotatedToken(token);
    }

    public static void Map(RouteGroupBuilder api) =>
        api.MapPost("/devices/{id}/rotate-token", async Task<Results<Ok<RotatedToken>, NotFoundProblem>> (string id, IMediator m, CancellationToken ct) =>
                await m.Send(new RotateTokenCommand(id), ct) is { } t ? TypedResults.Ok(t) : DeviceResults.NotFound(id))
            .RequireAuthorization("operator")
            .WithName("RotateDeviceToken").WithSummary("Issue a new token; the old one is refused at once").WithTags("Devices");
}
