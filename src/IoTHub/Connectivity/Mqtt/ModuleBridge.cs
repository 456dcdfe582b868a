// The broker's way to the other modules (device state, commands, presence) through the mediator. Those handlers use
// the database: thousands of devices (re)connecting at once must not become thousands of concurrent database
// connections (PostgreSQL refuses past max_connections), so at most 16 run at a time and the rest wait their turn.
using Mediator;

namespace IoTHub.Connectivity.Mqtt;

internal sealed class ModuleBridge(IServiceScopeFactory scopes, ILogger<ModuleBridge> log)
{
    private readonly SemaphoreSlim _handlers = new(16);

    public async Task PublishAsync(INotification notification)
    {
        await _handlers.WaitAsync();
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            await scope.ServiceProvider.GetRequiredService<IPublisher>().Publish(notification);
        }
        catch (Exception ex)
        {
            log.LogError(ex, "Handling {Notification} failed", notification.GetType().Name);
        }
        finally
        {
            _handlers.Release();
        }
    }

    /// <summary>Sends a request; on failure logs it and returns the default (the caller answers the client with an error).
    /// Where the default is also an answer (null for "taken"), use <see cref="TrySendAsync{T}"/>.</summary>
    public async Task<T?> SendAsync<T>(IRequest<T> request) => (await TrySendAsync(request)).Value;

    /// <summary>Sends a request; <c>Handled</c> is false when its handler failed (logged), so a failure is never read as the
    /// handler's own answer: a command response whose handler threw was acked as taken, and lost.</summary>
    public async Task<(bool Handled, T? Value)> TrySendAsync<T>(IRequest<T> request)
    {
        await _handlers.WaitAsync();
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            return (true, await scope.ServiceProvider.GetRequiredService<IMediator>().Send(request));
        }
        catch (Exception ex)
        {
            log.LogError(ex, "Handling {Request} failed", request.GetType().Name);
            return (false, default);
        }
        finally
        {
            _handlers.Release();
        }
    }

    /// <summary>Runs a notification off the broker's event thread (e.g. delivering queued commands right after SUBACK).</summary>
    public void Background(INotification notification) => _ = Task.Run(() => PublishAsync(notification));
}
