using IoTHub.Web.Components;
using Radzen;

namespace IoTHub.Web;

/// <summary>The admin web UI: Razor components rendered by the host (interactive over Blazor Server), Radzen for
/// grids and charts. Its assets are served from the binary; nothing is fetched from the internet.</summary>
public static class WebModule
{
    /// <summary>Registers Razor components with interactive server rendering, Radzen, and the UI's mediator.</summary>
    public static IServiceCollection AddWeb(this IServiceCollection services, IConfiguration config)
    {
        services.AddRazorComponents().AddInteractiveServerComponents();
        services.AddRadzenComponents();
        services.AddCascadingAuthenticationState();
        services.AddSingleton<ScopedMediator>();
        services.AddSingleton<Components.Pages.Firmware.IFirmwareData, Components.Pages.Firmware.MediatorFirmwareData>();
        return services;
    }

    /// <summary>Maps the UI's static assets and its pages; every page but <c>/login</c> requires a signed-in user.</summary>
    public static WebApplication MapWeb(this WebApplication app)
    {
        app.MapStaticAssets();
        app.MapRazorComponents<App>().AddInteractiveServerRenderMode();
        return app;
    }
}
