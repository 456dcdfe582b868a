using IoTHub.Contracts;
using IoTHub.Devices.GetDevice;
using IoTHub.Storage;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Devices.DeleteDevice;

/// <summary>Deletes a device with everything the hub holds of it; true when it existed.</summary>
public sealed record DeleteDeviceCommand(string Id) : IRequest<bool>;

/// <summary>Deletes the device; its connections drop and other modules delete what they hold of it.</summary>
internal sealed class DeleteDeviceHandler(HubDb db, IMediator mediator) : IRequestHandler<DeleteDeviceCommand, bool>
{
    public async ValueTask<bool> Handle(DeleteDeviceCommand c, CancellationToken ct)
    {
        var n = await db.Set<Device>().Where(d => d.Id == c.Id).ExecuteDeleteAsync(ct);
        if (n == 0) return false;
        await mediator.Publish(new DeviceCredentialsRevoked(c.Id), ct);
        await mediator.Publish(new DeviceDeleted(c.Id), ct);
        await mediator.Publish(new DeviceProfileAssigned(c.Id, null), ct);
        return true;
    }

    public static void Map(RouteGroupBuilder api) =>
        api.MapDelete("/devices/{id}", async Task<Results<NoContent, NotFoundProblem>> (string id, IMediator m, CancellationToken ct) =>
                await m.Send(new DeleteDeviceCommand(id), ct) ? TypedResults.NoContent() : DeviceResults.NotFound(id))
            .RequireAuthorization("operator")
            .WithName("DeleteDevice").WithSummary("Delete a device with its telemetry; live connections are dropped").WithTags("Devices");
}
