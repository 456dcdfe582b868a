// CoAP over DTLS 1.2 with PSK (identity: device id; key: device token) driven by libcoap's coap-client-openssl, whose
// DTLS is OpenSSL's: a peer nobody here wrote. Hostile shapes (a first ClientHello, garbage) by hand. On both stores.
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using IoTHub.Connectivity.Coap;
using IoTHub.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace IoTHub.Tests.Connectivity.Coap;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class CoapDtlsTests(Store store) : HubFixture(store)
{
    private const string Client = "coap-client-openssl";

    private string Uri(string path) => $"coaps://127.0.0.1:{Hub.CoapDtlsPort}/{path}";

    // -B bounds the wait. A handshake that succeeds and a request answered after a commit get 15 s (on a loaded machine,
    // a PSK looked up in the database and a commit); one with a wrong key is never answered (the server cannot decrypt
    // the client's Finished), so a refusal is waited for 5 s.
    private static Task<(int Code, string Output)> CoapAsync(string identity, string key, params string[] args) =>
        ExternalTool.RunAsync(Client, ["-B", "15", "-u", identity, "-k", key, .. args]);

    private static Task<(int Code, string Output)> RefusedHandshakeAsync(string identity, string key, params string[] args) =>
        ExternalTool.RunAsync(Client, ["-B", "5", "-u", identity, "-k", key, .. args]);

    private async Task<JsonArray> ValuesAsync(string id)
    {
        using var admin = await Hub.AdminAsync();
        return (await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest"))["values"]!.AsArray();
    }

    private async Task<double?> ValueAsync(string id, string metric) =>
        (await ValuesAsync(id)).FirstOrDefault(v => v!["metric"]!.GetValue<string>() == metric)?["value"]?.GetValue<double>();

    [Test]
    public async Task A_POST_over_DTLS_with_the_device_id_and_token_as_PSK_is_stored_without_a_token_in_the_URI()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (code, output) = await CoapAsync(id, token, "-m", "post", "-t", "json", "-e", """{"t": 1}""", Uri($"devices/{id}/telemetry"));
        Assert.That(code, Is.Zero, output);
        Assert.That(output, Does.Not.Contain("4."));
        Assert.That(await ValueAsync(id, "t"), Is.EqualTo(1));
    }

    [Test]
    public async Task A_wrong_key_fails_the_handshake_and_stores_nothing()
    {
        var (id, _) = await Hub.CreateDeviceAsync();
        var (code, output) = await RefusedHandshakeAsync(id, "not-the-token", "-m", "post", "-t", "json", "-e", """{"t": 2}""", Uri($"devices/{id}/telemetry"));
        Assert.That(output, Does.Not.Contain("2.04"));
        Assert.That(await ValuesAsync(id), Is.Empty, $"exit {code}: {output}");
        // An unknown identity likewise.
        (_, output) = await RefusedHandshakeAsync("no-such-device", "x", "-m", "post", "-t", "json", "-e", """{"t": 2}""", Uri("devices/no-such-device/telemetry"));
        Assert.That(output, Does.Not.Contain("2.04"));
    }

    [Test]
    public async Task A_session_of_device_A_cannot_post_for_device_B()
    {
        var (a, tokenA) = await Hub.CreateDeviceAsync();
        var (b, _) = await Hub.CreateDeviceAsync();
        var (_, output) = await CoapAsync(a, tokenA, "-m", "post", "-t", "json", "-e", """{"t": 3}""", Uri($"devices/{b}/telemetry"));
        Assert.That(output, Does.Contain("4.03"));
        Assert.That(await ValuesAsync(b), Is.Empty);
    }

    [Test]
    public async Task A_session_of_device_A_cannot_post_for_device_B_on_the_ThingsBoard_path_even_with_Bs_token()
    {
        var (a, tokenA) = await Hub.CreateDeviceAsync();
        var (b, tokenB) = await Hub.CreateDeviceAsync();
        var (_, output) = await CoapAsync(a, tokenA, "-m", "post", "-t", "json", "-e", """{"t": 5}""", Uri($"api/v1/{tokenB}/telemetry"));
        Assert.That(output, Does.Contain("4.03"));
        Assert.That(await ValuesAsync(b), Is.Empty);
        var (code, own) = await CoapAsync(a, tokenA, "-m", "post", "-t", "json", "-e", """{"t": 6}""", Uri($"api/v1/{tokenA}/telemetry"));
        Assert.That(code, Is.Zero, own);
        Assert.That(own, Does.Not.Contain("4."), "its own token on its own session is stored");
    }

    [Test]
    public async Task A_rotated_token_is_the_new_key_and_the_old_one_fails()
    {
        var (id, old) = await Hub.CreateDeviceAsync();
        using var admin = await Hub.AdminAsync();
        var rotated = await admin.PostAsync($"/api/v1/devices/{id}/rotate-token", null);
        rotated.EnsureSuccessStatusCode();
        var token = (await rotated.Content.ReadFromJsonAsync<JsonObject>())!["token"]!.GetValue<string>();
        var (_, output) = await RefusedHandshakeAsync(id, old, "-m", "post", "-t", "json", "-e", """{"old": 1}""", Uri($"devices/{id}/telemetry"));
        Assert.That(output, Does.Not.Contain("2.04"));
        var (code, output2) = await CoapAsync(id, token, "-m", "post", "-t", "json", "-e", """{"new": 1}""", Uri($"devices/{id}/telemetry"));
        Assert.That(code, Is.Zero, output2);
        Assert.That(await ValueAsync(id, "new"), Is.EqualTo(1));
        Assert.That(await ValueAsync(id, "old"), Is.Null);
    }

    [Test]
    public async Task Discovery_over_DTLS_lists_the_session_s_device_s_resources_without_a_token()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (code, output) = await CoapAsync(id, token, Uri(".well-known/core"));
        Assert.That(code, Is.Zero, output);
        Assert.That(output, Does.Contain($"</devices/{id}/telemetry>").And.Contain($"</devices/{id}/commands>;rt=\"iothub.commands\";ct=50;obs"));
    }

    [Test]
    public async Task A_disabled_device_cannot_handshake()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var admin = await Hub.AdminAsync();
        (await admin.PatchAsJsonAsync($"/api/v1/devices/{id}", new { enabled = false })).EnsureSuccessStatusCode();
        var (_, output) = await RefusedHandshakeAsync(id, token, "-m", "post", "-t", "json", "-e", """{"t": 4}""", Uri($"devices/{id}/telemetry"));
        Assert.That(output, Does.Not.Contain("2.04"));
        Assert.That(await ValuesAsync(id), Is.Empty);
    }

    /// <summary>A minimal DTLS 1.2 ClientHello offering TLS_PSK_WITH_AES_128_CCM_8, without a cookie.</summary>
    internal static byte[] ClientHello()
    {
        var body = new List<byte> { 0xFE, 0xFD };           // client_version DTLS 1.2
        body.AddRange(Enumerable.Range(0, 32).Select(i => (byte)i)); // random
        body.Add(0);                                         // session_id: empty
        body.Add(0);                                         // cookie: empty
        body.AddRange([0x00, 0x02, 0xC0, 0xA8]);             // cipher_suites: TLS_PSK_WITH_AES_128_CCM_8
        body.AddRange([0x01, 0x00]);                         // compression_methods: null
        var n = body.Count;
        var handshake = new List<byte> { 1, 0, (byte)(n >> 8), (byte)n, 0, 0, 0, 0, 0, 0, (byte)(n >> 8), (byte)n };
        handshake.AddRange(body);
        var m = handshake.Count;
        var record = new List<byte> { 22, 0xFE, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, (byte)(m >> 8), (byte)m };
        record.AddRange(handshake);
        return [.. record];
    }

    [Test]
    public async Task A_first_ClientHello_gets_only_a_HelloVerifyRequest_no_larger_than_itself_and_no_session()
    {
        var dtls = Hub.Services.GetRequiredService<DtlsServer>();
        var before = dtls.Sessions;
        using var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var hello = ClientHello();
        await udp.SendAsync(hello, new IPEndPoint(IPAddress.Loopback, Hub.CoapDtlsPort));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var answer = (await udp.ReceiveAsync(timeout.Token)).Buffer;
        Assert.That(answer.Length, Is.LessThanOrEqualTo(hello.Length));
        Assert.That(answer[0], Is.EqualTo(22), "a handshake record");
        Assert.That(answer[13], Is.EqualTo(3), "a HelloVerifyRequest");
        // Nothing else follows, and the hub keeps nothing for an address that has not returned the cookie.
        using var quiet = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        Assert.That(async () => await udp.ReceiveAsync(quiet.Token), Throws.InstanceOf<OperationCanceledException>());
        Assert.That(dtls.Sessions, Is.LessThanOrEqualTo(before));
    }

    [Test]
    public async Task Garbage_on_the_DTLS_port_is_survived()
    {
        using var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var to = new IPEndPoint(IPAddress.Loopback, Hub.CoapDtlsPort);
        var random = new Random(19);
        var hello = ClientHello();
        for (var i = 0; i < 200; i++)
        {
            var junk = new byte[random.Next(0, 300)];
            random.NextBytes(junk);
            if (i % 3 == 0 && junk.Length > 0) junk[0] = 22; // looks like a handshake record
            await udp.SendAsync(junk, to);
        }
        // Truncated and mutated ClientHellos.
        for (var cut = 0; cut < hello.Length; cut += 5) await udp.SendAsync(hello.AsMemory(0, cut), to);
        for (var i = 0; i < 100; i++)
        {
            var mutated = (byte[])hello.Clone();
            mutated[random.Next(mutated.Length)] ^= (byte)random.Next(1, 256);
            await udp.SendAsync(mutated, to);
        }
        var (id, token) = await Hub.CreateDeviceAsync();
        var (code, output) = await CoapAsync(id, token, "-m", "post", "-t", "json", "-e", """{"after": 5}""", Uri($"devices/{id}/telemetry"));
        Assert.That(code, Is.Zero, output);
        Assert.That(await ValueAsync(id, "after"), Is.EqualTo(5));
    }
}
