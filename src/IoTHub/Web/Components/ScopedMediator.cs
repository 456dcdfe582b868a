// Blazor Server keeps one DI scope per circuit, so the mediator injected into a component would share one DbContext
// with every other component of the tab: a live refresh racing a click, or two panels loading at once, would be two
// operations on one context (EF Core throws), and tracked entities would go stale for the circuit's lifetime. The UI
// therefore sends each request in a scope of its own, as EF Core's guidance for Blazor Server asks.
using Mediator;

namespace IoTHub.Web.Components;

/// <summary>The UI's mediator: each request runs in a DI scope (and so a DbContext) of its own; see the file's header.</summary>
/// <param name="scopes">Creates the scope of each request.</param>
public sealed class ScopedMediator(IServiceScopeFactory scopes)
{
    /// <summary>Sends a module's request to its handler in a fresh scope and returns the handler's answer.</summary>
    public async ValueTask<TResponse> Send<TResponse>(IRequest<TResponse> request, CancellationToken ct = default)
    {
        await using var scope = scopes.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<IMediator>().Send(request, ct);
    }
}
