using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Connectivity;

/// <summary>The certificate given as a password-protected PFX (<c>Tls:CertificatePath</c> + <c>Tls:Password</c>):
/// the hub serves exactly that certificate over MQTT/TLS and HTTPS.</summary>
[TestFixture(Store.Sqlite)]
public sealed class TlsPfxTests(Store store) : HubFixture(store)
{
    private static readonly string Folder = Path.Combine(Path.GetTempPath(), "iothub-pfx-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly int _tlsPort = HubHost.FreeTcpPort();
    private readonly int _httpsPort = HubHost.FreeTcpPort();
    private string _thumbprint = "";

    protected override IDictionary<string, string?> Settings
    {
        get
        {
            Directory.CreateDirectory(Folder);
            using var key = RSA.Create(2048);
            using var cert = TestCertificates.SelfSignedServer(key);
            _thumbprint = cert.GetCertHashString(HashAlgorithmName.SHA256);
            File.WriteAllBytes(Path.Combine(Folder, "server.pfx"), cert.Export(X509ContentType.Pfx, "pfx-secret"));
            return new Dictionary<string, string?>
            {
                ["Tls:CertificatePath"] = Path.Combine(Folder, "server.pfx"),
                ["Tls:Password"] = "pfx-secret",
                ["Tls:HttpsPort"] = _httpsPort.ToString(),
                ["Mqtt:TlsPort"] = _tlsPort.ToString(),
            };
        }
    }

    [Test]
    public async Task A_pfx_certificate_is_served_over_mqtt_tls_and_https()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        string? served = null;
        using var client = new MqttClientFactory().CreateMqttClient();
        var options = new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", _tlsPort).WithClientId(id + ":pfx")
            .WithCredentials(id, token).WithTimeout(TimeSpan.FromSeconds(10))
            .WithTlsOptions(o => o.UseTls().WithCertificateValidationHandler(c =>
            {
                served = new X509Certificate2(c.Certificate).GetCertHashString(HashAlgorithmName.SHA256);
                return true;
            }))
            .Build();

        Assert.That(await MqttConnect.TryAsync(client, options), Is.EqualTo(MqttClientConnectResultCode.Success));
        var ack = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry").WithPayload("""{"pfx": 1}""")
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success));
        Assert.That(served, Is.EqualTo(_thumbprint), "MQTT/TLS serves the PFX's certificate");

        string? servedHttps = null;
        using var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, c, _, _) =>
            {
                servedHttps = c?.GetCertHashString(HashAlgorithmName.SHA256);
                return true;
            },
        };
        using var https = new HttpClient(handler) { BaseAddress = new Uri($"https://127.0.0.1:{_httpsPort}") };
        Assert.That((await https.GetAsync("/health/live")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(servedHttps, Is.EqualTo(_thumbprint), "HTTPS serves the PFX's certificate");
    }

    [OneTimeTearDown]
    public void RemoveFolder()
    {
        if (Directory.Exists(Folder)) Directory.Delete(Folder, recursive: true);
    }
}
