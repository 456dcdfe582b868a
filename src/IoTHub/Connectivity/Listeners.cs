// Kestrel serves HTTP (and MQTT over WebSocket) on the standard --urls / ASPNETCORE_URLS (default :8080) and
// MQTT over TCP on Mqtt:Port. Kestrel ignores URLs once any endpoint is configured in code, so both are set here.
using System.Net;
using MQTTnet.AspNetCore;

namespace IoTHub.Connectivity;

public static class Listeners
{
    public const string DefaultUrls = "http://0.0.0.0:8080";

    public static IWebHostBuilder ConfigureHubListeners(this IWebHostBuilder web, IConfiguration config)
    {
        // Read now: the caller clears the "urls" setting afterwards so that Kestrel does not warn about overriding it.
        var urls = config["urls"] is { Length: > 0 } u ? u : DefaultUrls;
        var mqttPort = config.GetValue(MqttOptions.SectionName + ":Port", 1883);
        var mqttHost = config[MqttOptions.SectionName + ":Host"];
        web.ConfigureKestrel(k =>
        {
            foreach (var url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var address = BindingAddress.Parse(url);
                Action<Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions> configure = address.Scheme == "https" ? l => l.UseHttps() : _ => { };
                switch (address.Host)
                {
                    case "localhost":
                        k.ListenLocalhost(address.Port, configure);
                        break;
                    case "*" or "+" or "0.0.0.0" or "[::]" or "::":
                        k.ListenAnyIP(address.Port, configure);
                        break;
                    default:
                        k.Listen(IPAddress.Parse(address.Host.Trim('[', ']')), address.Port, configure);
                        break;
                }
            }
            if (mqttPort > 0)
            {
                Action<Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions> mqtt = l =>
                {
                    l.Use(next => k.ApplicationServices.GetRequiredService<Mqtt.MqttConnectionGuard>().Wrap(next));
                    l.UseMqtt();
                };
                if (string.IsNullOrEmpty(mqttHost)) k.ListenAnyIP(mqttPort, mqtt);
                else k.Listen(IPAddress.Parse(mqttHost), mqttPort, mqtt);
            }
        });
        return web;
    }
}
