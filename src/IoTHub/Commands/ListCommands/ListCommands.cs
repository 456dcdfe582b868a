using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Commands.ListCommands;

/// <summary>Newest first; the cursor is the last id of the previous page (ids are time-ordered UUIDv7).</summary>
internal sealed record ListCommandsQuery(string DeviceId, string? State, string? Cursor, int Limit) : IRequest<Page<CommandView>?>;

/// <summary>One command of a device, or null when that device has no command with this id.</summary>
internal sealed record GetCommandQuery(string DeviceId, string CommandId) : IRequest<CommandView?>;

internal sealed class ListCommandsHandler(HubDb db, IMediator mediator) :
    IRequestHandler<ListCommandsQuery, Page<CommandView>?>, IRequestHandler<GetCommandQuery, CommandView?>
{
    public async ValueTask<Page<CommandView>?> Handle(ListCommandsQuery q, CancellationToken ct)
    {
        if (!await mediator.Send(new DeviceExists(q.DeviceId), ct)) return null;
        var commands = db.Set<DeviceCommand>().AsNoTracking().Where(c => c.DeviceId == q.DeviceId);
        if (q.State is not null) commands = commands.Where(c => c.State == q.State);
        if (q.Cursor is { Length: > 0 } before) commands = commands.Where(c => string.Compare(c.Id, before) < 0);
        var page = await commands.OrderByDescending(c => c.Id).Take(q.Limit + 1).ToListAsync(ct);
        var items = page.Take(q.Limit).Select(CommandView.Of).ToList();
        return new Page<CommandView>(items, page.Count > q.Limit ? items[^1].Id : null);
    }

    public async ValueTask<CommandView?> Handle(GetCommandQuery q, CancellationToken ct)
    {
        var c = await db.Set<DeviceCommand>().AsNoTracking().FirstOrDefaultAsync(c => c.Id == q.CommandId && c.DeviceId == q.DeviceId, ct);
        return c is null ? null : CommandView.Of(c);
    }

    public static void Map(RouteGroupBuilder api)
    {
        api.MapGet("/devices/{id}/commands", async Task<Results<Ok<Page<CommandView>>, ValidationProblem, NotFoundProblem>> (string id, string? state,
                string? cursor, int? limit, IMediator m, CancellationToken ct) =>
            {
                if (state is not null && !CommandState.All.Contains(state))
                    return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["state"] = [$"state must be one of {string.Join(", ", CommandState.All)}"] });
                if (PageLimit.Check(limit, 50, 500, out var n) is { } badLimit) return badLimit;
                return await m.Send(new ListCommandsQuery(id, state, cursor, n), ct) is { } page
                    ? TypedResults.Ok(page) : new NotFoundProblem($"Device '{id}' not found");
            })
            .WithName("ListCommands").WithSummary("A device's commands with their state, newest first").WithTags("Commands");

        api.MapGet("/devices/{id}/commands/{commandId}", async Task<Results<Ok<CommandView>, NotFoundProblem>> (string id, string commandId, IMediator m, CancellationToken ct) =>
                await m.Send(new GetCommandQuery(id, commandId), ct) is { } c ? TypedResults.Ok(c) : new NotFoundProblem($"Command '{commandId}' not found"))
            .WithName("GetCommand").WithSummary("One command with its state and the device's response").WithTags("Commands");
    }
}
