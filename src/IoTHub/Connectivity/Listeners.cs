// Kestrel serves HTTP (and MQTT over WebSocket) on the standard --urls / ASPNETCORE_URLS (default :8080),
// MQTT over TCP on Mqtt:Port and, when Tls:CertificatePath is set, MQTT over TLS on Mqtt:TlsPort and HTTPS on Tls:HttpsPort. Kestrel ignores URLs once any endpoint is configured in code, so both are set here.
using System.Net;
using MQTTnet.AspNetCore;

namespace IoTHub.Connectivity;

internal static class Listeners
{
    public const string DefaultUrls = "http://0.0.0.0:8080";

    public static IWebHostBuilder ConfigureHubListeners(this IWebHostBuilder web, IConfiguration config)
    {
        // Read now: the caller clears the "urls" setting afterwards so that Kestrel does not warn about overriding it.
        var urls = config["urls"] is { Length: > 0 } u ? u : DefaultUrls;
        // With devices on RabbitMQ (Broker:Mode = RabbitMq) the embedded broker listens nowhere.
        var embedded = !RabbitMq.RabbitMqMode.IsOn(config);
        var mqttPort = embedded ? config.GetValue(MqttOptions.SectionName + ":Port", 1883) : 0;
        var mqttTlsPort = embedded ? config.GetValue(MqttOptions.SectionName + ":TlsPort", 8883) : 0;
        var mqttHost = config[MqttOptions.SectionName + ":Host"];
        var tls = config.GetSection(TlsOptions.SectionName).Get<TlsOptions>() ?? new TlsOptions();
        // Loaded now so that a wrong path or password stops the start with a clear error.
        var certificate = tls.Enabled ? tls.LoadCertificate() : null;
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
                    l.Use(next => k.ApplicationServices.GetRequiredService<Mqtt.Flow.MqttConnectionGuard>().Wrap(next));
                    l.UseMqtt();
                };
                ListenOn(mqttPort, mqtt);
            }
            if (certificate is not null && mqttTlsPort > 0)
            {
                // Devices may present a client certificate; it is checked against the thumbprint registered on the device,
                // so self-signed device certificates are fine and no CA chain is required.
                ListenOn(mqttTlsPort, l =>
                {
                    l.UseHttps(new Microsoft.AspNetCore.Server.Kestrel.Https.HttpsConnectionAdapterOptions
                    {
                        ServerCertificate = certificate,
                        ClientCertificateMode = Microsoft.AspNetCore.Server.Kestrel.Https.ClientCertificateMode.AllowCertificate,
                        ClientCertificateValidation = (_, _, _) => true,
                    });
                    l.Use(next => k.ApplicationServices.GetRequiredService<Mqtt.Flow.MqttConnectionGuard>().Wrap(next));
                    l.UseMqtt();
                });
            }
            if (certificate is not null && tls.HttpsPort > 0)
            {
                ListenOn(tls.HttpsPort, l => l.UseHttps(certificate));
            }

            void ListenOn(int port, Action<Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions> configure)
            {
                if (string.IsNullOrEmpty(mqttHost)) k.ListenAnyIP(port, configure);
                else k.Listen(IPAddress.Parse(mqttHost), port, configure);
            }
        });
        return web;
    }
}
