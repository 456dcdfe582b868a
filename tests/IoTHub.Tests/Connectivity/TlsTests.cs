using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Connectivity;

/// <summary>MQTT over TLS and HTTPS from a PEM certificate, and devices logging in with a registered client certificate.</summary>
[TestFixture(Store.Sqlite)]
public sealed class TlsTests(Store store) : HubFixture(store)
{
    private static readonly string Folder = Path.Combine(Path.GetTempPath(), "iothub-tls-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly int _tlsPort = HubHost.FreeTcpPort();
    private readonly int _httpsPort = HubHost.FreeTcpPort();

    protected override IDictionary<string, string?> Settings
    {
        get
        {
            Directory.CreateDirectory(Folder);
            using var key = RSA.Create(2048);
            using var cert = TestCertificates.SelfSignedServer(key);
            File.WriteAllText(Path.Combine(Folder, "server.crt"), cert.ExportCertificatePem());
            File.WriteAllText(Path.Combine(Folder, "server.key"), key.ExportPkcs8PrivateKeyPem());
            return new Dictionary<string, string?>
            {
                ["Tls:CertificatePath"] = Path.Combine(Folder, "server.crt"),
                ["Tls:KeyPath"] = Path.Combine(Folder, "server.key"),
                ["Tls:HttpsPort"] = _httpsPort.ToString(),
                ["Mqtt:TlsPort"] = _tlsPort.ToString(),
            };
        }
    }

    private static X509Certificate2 DeviceCertificate(string deviceId)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={deviceId}", key, HashAlgorithmName.SHA256);
        using var ephemeral = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        return X509CertificateLoader.LoadPkcs12(ephemeral.Export(X509ContentType.Pkcs12), null); // a key SslStream can use
    }

    private MqttClientOptions TlsOptions(string user, string? password, X509Certificate2? clientCertificate = null)
    {
        var b = new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", _tlsPort).WithClientId(user + ":tls-" + Guid.NewGuid().ToString("N")[..8])
            .WithCredentials(user, password).WithTimeout(TimeSpan.FromSeconds(10))
            .WithTlsOptions(o =>
            {
                o.UseTls().WithCertificateValidationHandler(_ => true);
                if (clientCertificate is not null) o.WithClientCertificates([clientCertificate]);
            });
        return b.Build();
    }

    [Test]
    public async Task A_device_publishes_over_mqtt_tls_with_its_token()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = new MqttClientFactory().CreateMqttClient();
        Assert.That(await MqttConnect.TryAsync(client, TlsOptions(id, token)), Is.EqualTo(MqttClientConnectResultCode.Success));

        var ack = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry").WithPayload("""{"secure": 1}""")
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());

        Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success));
    }

    [Test]
    public async Task A_device_with_a_registered_client_certificate_needs_no_token_and_an_unknown_certificate_is_refused()
    {
        var (id, _) = await Hub.CreateDeviceAsync();
        using var registered = DeviceCertificate(id);
        using var stranger = DeviceCertificate(id);
        using var admin = await Hub.AdminAsync();
        var thumbprint = registered.GetCertHashString(HashAlgorithmName.SHA256);
        var patch = await admin.PatchAsync($"/api/v1/devices/{id}", Json.Of(new { certificateThumbprint = string.Join(':', thumbprint.Chunk(2).Select(c => new string(c))).ToLowerInvariant() }));
        Assert.That(patch.StatusCode, Is.EqualTo(HttpStatusCode.OK), await patch.Content.ReadAsStringAsync());
        Assert.That((await patch.ReadJsonAsync())["certificateThumbprint"]!.GetValue<string>(), Is.EqualTo(thumbprint), "stored normalised");

        using var good = new MqttClientFactory().CreateMqttClient();
        using var bad = new MqttClientFactory().CreateMqttClient();
        Assert.That(await MqttConnect.TryAsync(good, TlsOptions(id, null, registered)), Is.EqualTo(MqttClientConnectResultCode.Success));
        Assert.That(await MqttConnect.TryAsync(bad, TlsOptions(id, null, stranger)), Is.EqualTo(MqttClientConnectResultCode.BadUserNameOrPassword));

        var ack = await good.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry").WithPayload("""{"cert": 1}""")
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success));

        // Replacing the thumbprint drops the connection made with the old certificate.
        await admin.PatchAsync($"/api/v1/devices/{id}", Json.Of(new { certificateThumbprint = "" }));
        await WaitFor.ConditionAsync(() => !good.IsConnected, "the certificate's connection is dropped");
    }

    [Test]
    public async Task Https_serves_the_api_and_a_malformed_thumbprint_is_refused()
    {
        using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, _, _, _) => true };
        using var https = new HttpClient(handler) { BaseAddress = new Uri($"https://127.0.0.1:{_httpsPort}") };
        Assert.That((await https.GetAsync("/health/live")).StatusCode, Is.EqualTo(HttpStatusCode.OK));

        using var admin = await Hub.AdminAsync();
        var response = await admin.PostAsync("/api/v1/devices", Json.Of(new { certificateThumbprint = "not-a-thumbprint" }));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
    }

    [Test]
    public async Task Mosquitto_pub_publishes_over_tls_checking_the_servers_certificate()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (code, output) = await ExternalTool.RunAsync("mosquitto_pub", "-h", "127.0.0.1", "-p", _tlsPort.ToString(), "--cafile", Path.Combine(Folder, "server.crt"),
            "-V", "mqttv311", "-q", "1", "-i", id + ":tls", "-u", id, "-P", token, "-t", $"devices/{id}/telemetry", "-m", """{"via": 1}""");

        Assert.That(code, Is.Zero, output);
        using var admin = await Hub.AdminAsync();
        var latest = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest");
        Assert.That(latest["values"]!.AsArray().Single()!["metric"]!.GetValue<string>(), Is.EqualTo("via"));
    }
}
