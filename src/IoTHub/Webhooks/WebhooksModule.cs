using FluentValidation;
using IoTHub.Webhooks.Deliveries;
using IoTHub.Webhooks.Dispatch;
using IoTHub.Webhooks.ManageEndpoints;
using IoTHub.Webhooks.Network;
using IoTHub.Webhooks.Signing;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;
using Polly;

namespace IoTHub.Webhooks;

/// <summary>The Webhooks module: endpoints admins register, the outbox dispatcher, signed deliveries (Standard Webhooks)
/// with retries persisted for up to a day, the delivery log, replays and test events.</summary>
public static class WebhooksModule
{
    /// <summary>Registers the options (section <c>Webhooks</c>, validated at start), the SSRF-guarded <c>webhooks</c>
    /// HttpClient, the outbox dispatcher and the delivery worker, and the request validators.</summary>
    public static IServiceCollection AddWebhooks(this IServiceCollection services, IConfiguration config)
    {
        services.AddOptions<WebhooksOptions>().BindConfiguration(WebhooksOptions.SectionName).ValidateDataAnnotations()
            .Validate(o => o.RetryMaxDelay >= o.RetryBaseDelay, "Webhooks:RetryMaxDelay must not be shorter than Webhooks:RetryBaseDelay")
            .ValidateOnStart();
        services.AddSingleton<WebhookSecrets>();
        services.AddSingleton<WebhookMetrics>();
        services.AddSingleton<DeliverySignal>();
        services.AddSingleton<WebhookSender>();
        services.AddHttpClient(WebhookSender.ClientName, c => c.Timeout = Timeout.InfiniteTimeSpan) // the resilience handler times attempts
            .ConfigurePrimaryHttpMessageHandler(sp =>
            {
                var options = sp.GetRequiredService<IOptionsMonitor<WebhooksOptions>>();
                return new SocketsHttpHandler
                {
                    AllowAutoRedirect = false, // a redirect is a failure, and must not lead past the address check either
                    UseProxy = false, // the address check must see the receiver's address, not a proxy's
                    UseCookies = false,
                    PooledConnectionLifetime = TimeSpan.FromMinutes(2), // DNS changes are noticed, and checked again
                    ConnectCallback = WebhookTarget.Connect(() => options.CurrentValue.AllowPrivateNetworks),
                };
            })
            // Only a timeout: retries are scheduled in the delivery rows (up to a day), not held in memory by Polly.
            .AddResilienceHandler("webhook-attempt", (pipeline, context) =>
                pipeline.AddTimeout(context.ServiceProvider.GetRequiredService<IOptions<WebhooksOptions>>().Value.RequestTimeout));
        services.AddHostedService<OutboxDispatcher>();
        services.AddHostedService<DeliveryWorker>();
        services.AddValidatorsFromAssemblyContaining<CreateWebhookValidator>(ServiceLifetime.Singleton,
            filter: r => r.ValidatorType.Namespace!.StartsWith("IoTHub.Webhooks", StringComparison.Ordinal), includeInternalTypes: true);
        return services;
    }

    /// <summary>Maps <c>/webhooks</c> (admin): endpoints, secret rotation, the delivery log, replays and test events.</summary>
    public static IEndpointRouteBuilder MapWebhooks(this IEndpointRouteBuilder app, RouteGroupBuilder api)
    {
        // An empty prefix: a "/webhooks" group would make the list and create routes "/webhooks/" in OpenAPI.
        var hooks = api.MapGroup("").RequireAuthorization("admin").WithTags("Webhooks");
        ManageWebhooksHandler.Map(hooks);
        DeliveriesHandler.Map(hooks);
        return app;
    }
}
