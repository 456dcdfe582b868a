// The CoAP device API driven by libcoap's coap-client-openssl (Debian's libcoap3-bin), a real peer nobody here wrote,
// and by hand-built datagrams where a test needs a retransmission or a hostile shape. On both stores.
using System.Formats.Cbor;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Connectivity.Coap;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class CoapClientTests(Store store) : HubFixture(store)
{
    private const string Client = "coap-client-openssl";

    private string Uri(string path) => $"coap://127.0.0.1:{Hub.CoapPort}/{path}";

    private Task<(int Code, string Output)> CoapAsync(params string[] args) => ExternalTool.RunAsync(Client, ["-B", "10", .. args]);

    private async Task<JsonNode> LatestAsync(string id)
    {
        using var admin = await Hub.AdminAsync();
        return await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest");
    }

    private async Task<double?> ValueAsync(string id, string metric) =>
        (await LatestAsync(id))["values"]!.AsArray().FirstOrDefault(v => v!["metric"]!.GetValue<string>() == metric)?["value"]?.GetValue<double>();

    [Test]
    public async Task A_CON_POST_of_JSON_is_stored_before_its_2_04()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (code, output) = await CoapAsync("-m", "post", "-t", "json", "-e", """{"temperature": 21.5}""", Uri($"devices/{id}/telemetry?token={token}"));
        Assert.That(code, Is.Zero, output);
        Assert.That(output, Does.Not.Contain("4."));
        // No wait: the 2.04 came after the commit.
        Assert.That(await ValueAsync(id, "temperature"), Is.EqualTo(21.5));
        // The device is online over CoAP, and its connection history says so.
        using var admin = await Hub.AdminAsync();
        await WaitFor.ConditionAsync(async () => (await admin.GetJsonAsync($"/api/v1/devices/{id}"))["status"]!.GetValue<string>() == "online", "the device is online");
        await WaitFor.ConditionAsync(async () => (await admin.GetJsonAsync($"/api/v1/devices/{id}/connections"))["items"]!.AsArray()
            .Any(c => c!["protocol"]?.GetValue<string>() == "coap"), "the connection history shows coap");
    }

    [Test]
    public async Task A_CBOR_POST_is_stored()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var cbor = new CborWriter();
        cbor.WriteStartMap(1);
        cbor.WriteTextString("humidity");
        cbor.WriteDouble(40.25);
        cbor.WriteEndMap();
        var file = Path.GetTempFileName();
        await File.WriteAllBytesAsync(file, cbor.Encode());
        var (code, output) = await CoapAsync("-m", "post", "-t", "cbor", "-f", file, Uri($"devices/{id}/telemetry?token={token}"));
        File.Delete(file);
        Assert.That(code, Is.Zero, output);
        Assert.That(await ValueAsync(id, "humidity"), Is.EqualTo(40.25));
    }

    [Test]
    public async Task A_NON_POST_is_taken_without_reply()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        // No reply comes: coap-client waits its whole -B for one, so 1 s rather than the 10 s of the others.
        var (code, output) = await ExternalTool.RunAsync(Client, "-B", "1", "-N", "-m", "post", "-t", "json", "-e", """{"pressure": 1013}""", Uri($"devices/{id}/telemetry?token={token}"));
        Assert.That(code, Is.Zero, output);
        await WaitFor.ConditionAsync(async () => await ValueAsync(id, "pressure") == 1013, "the NON message is stored");
    }

    [Test]
    public async Task A_20_KB_Block1_upload_in_64_byte_blocks_is_assembled_and_stored()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var batch = new JsonArray();
        for (var i = 0; batch.ToJsonString().Length < 20_000; i++) batch.Add(new JsonObject { ["ts"] = now - 1000 * i, ["values"] = new JsonObject { ["level"] = i } });
        var file = Path.GetTempFileName();
        await File.WriteAllTextAsync(file, batch.ToJsonString());
        var (code, output) = await CoapAsync("-m", "post", "-t", "json", "-b", "64", "-f", file, Uri($"devices/{id}/telemetry?token={token}"));
        File.Delete(file);
        Assert.That(code, Is.Zero, output);
        Assert.That(await ValueAsync(id, "level"), Is.EqualTo(0), "the newest point (level 0) of the whole batch is stored");
        using var admin = await Hub.AdminAsync();
        var series = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=level&resolution=raw&maxPoints=10000&from={System.Uri.EscapeDataString(DateTimeOffset.UtcNow.AddHours(-2).ToString("O"))}");
        Assert.That(series["points"]!.AsArray(), Has.Count.EqualTo(batch.Count));
    }

    [Test]
    public async Task The_ThingsBoard_path_takes_the_token_alone()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (code, output) = await CoapAsync("-m", "post", "-t", "json", "-e", """{"tb": 7}""", Uri($"api/v1/{token}/telemetry"));
        Assert.That(code, Is.Zero, output);
        Assert.That(await ValueAsync(id, "tb"), Is.EqualTo(7));
        (_, output) = await CoapAsync("-m", "post", "-t", "json", "-e", """{"tb": 8}""", Uri("api/v1/not-a-token/telemetry"));
        Assert.That(output, Does.Contain("4.01"));
    }

    [Test]
    public async Task A_wrong_token_is_4_01_and_a_disabled_device_4_03_and_nothing_is_stored()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (_, output) = await CoapAsync("-m", "post", "-t", "json", "-e", """{"x": 1}""", Uri($"devices/{id}/telemetry?token=wrong"));
        Assert.That(output, Does.Contain("4.01"));
        using var admin = await Hub.AdminAsync();
        await admin.PatchAsJsonAsync($"/api/v1/devices/{id}", new { enabled = false });
        (_, output) = await CoapAsync("-m", "post", "-t", "json", "-e", """{"x": 2}""", Uri($"devices/{id}/telemetry?token={token}"));
        Assert.That(output, Does.Contain("4.03"));
        Assert.That((await LatestAsync(id))["values"]!.AsArray(), Is.Empty);
    }

    [Test]
    public async Task Bad_telemetry_is_4_00_naming_the_field_and_an_unknown_content_format_4_15()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (_, output) = await CoapAsync("-m", "post", "-t", "json", "-e", """{"temperature": {"celsius": 21}}""", Uri($"devices/{id}/telemetry?token={token}"));
        Assert.That(output, Does.Contain("4.00"));
        Assert.That(output, Does.Contain("temperature"));
        Assert.That(output.Split("temperature").Length - 1, Is.EqualTo(1), "the diagnostic names the problem once: " + output);
        (_, output) = await CoapAsync("-m", "post", "-t", "text/plain", "-e", "21.5", Uri($"devices/{id}/telemetry?token={token}"));
        Assert.That(output, Does.Contain("4.15"));
    }

    [Test]
    public async Task An_observer_of_the_desired_state_sees_a_change_made_through_the_REST_API()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var observe = ExternalTool.RunAsync(Client, "-s", "6", "-B", "8", Uri($"devices/{id}/state/desired?token={token}"));
        // The observation is registered by the first GET; the change is made only then (a fixed pause was too short
        // for a loaded machine, and the first answer already had the change).
        var observers = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<IoTHub.Connectivity.Coap.CoapObservers>(Hub.Services);
        await WaitFor.ConditionAsync(() => observers.Observes(id), "coap-client observes the desired state");
        using var admin = await Hub.AdminAsync();
        var put = await admin.PutAsJsonAsync($"/api/v1/devices/{id}/state", new { desired = new { setpoint = 23 } });
        Assert.That(put.IsSuccessStatusCode, Is.True);
        var (_, output) = await observe;
        Assert.That(output, Does.Contain("\"version\":0"), "the first answer: nothing desired yet");
        Assert.That(output, Does.Contain("\"setpoint\":23"), "the notification after the change");
    }

    [Test]
    public async Task A_retransmitted_CON_is_answered_with_the_same_response_and_stored_once()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var request = Datagram(confirmable: true, messageId: 0x1234, token: [0xA1, 0xB2], path: ["devices", id, "telemetry"], query: $"token={token}",
            payload: """{"counter": 1}"""u8.ToArray());
        using var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var hub = new IPEndPoint(IPAddress.Loopback, Hub.CoapPort);
        await udp.SendAsync(request, hub);
        var first = await ReceiveAsync(udp);
        await udp.SendAsync(request, hub);
        var second = await ReceiveAsync(udp);
        Assert.That(second, Is.EqualTo(first), "the same bytes from the exchange cache");
        Assert.That(first[1], Is.EqualTo((byte)((2 << 5) | 4)), "2.04 Changed");
        Assert.That((first[0] >> 4) & 3, Is.EqualTo(2), "piggybacked on the ACK");
        Assert.That(first[2..4], Is.EqualTo(new byte[] { 0x12, 0x34 }));
        using var admin = await Hub.AdminAsync();
        var series = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=counter&resolution=raw&from={System.Uri.EscapeDataString(DateTimeOffset.UtcNow.AddHours(-1).ToString("O"))}");
        Assert.That(series["points"]!.AsArray(), Has.Count.EqualTo(1));
        var metrics = await (await Hub.Anonymous().GetAsync("/metrics")).Content.ReadAsStringAsync();
        Assert.That(metrics, Does.Match(@"(?m)^iothub_coap_duplicates_total [1-9]"), "the duplicate is counted");
        Assert.That(metrics, Does.Contain("iothub_coap_requests_total{code=\"2.04\"}"));
    }

    [Test]
    public async Task Hostile_datagrams_are_survived_and_a_CON_with_a_bad_option_is_told_why()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var hub = new IPEndPoint(IPAddress.Loopback, Hub.CoapPort);
        var random = new Random(7);
        foreach (var junk in new[] { Array.Empty<byte>(), [0x40], [0x40, 0x01, 0x00], [0x4F, 0x01, 0, 1], [0x80, 0x01, 0, 1] })
            await udp.SendAsync(junk, hub);
        for (var i = 0; i < 200; i++)
        {
            var junk = new byte[random.Next(1, 200)];
            random.NextBytes(junk);
            await udp.SendAsync(junk, hub);
        }
        // A CON GET whose option runs past the end: header and token are readable, so it hears 4.00 with a reason.
        await udp.SendAsync(new byte[] { 0x41, 0x01, 0x55, 0x66, 0x77, 0xBD, 0x05 }, hub);
        var answer = await ReceiveMatchingAsync(udp, 0x55, 0x66);
        Assert.That(answer[1], Is.EqualTo((byte)(4 << 5)), "4.00");
        // A request with an unknown critical option (number 9) is 4.02 (RFC 7252 §5.4.1).
        var critical = Datagram(true, 0x0777, [], ["devices", id, "telemetry"], $"token={token}", """{"y":1}"""u8.ToArray(), extraOption: (9, [1]));
        await udp.SendAsync(critical, hub);
        answer = await ReceiveMatchingAsync(udp, 0x07, 0x77);
        Assert.That(answer[1], Is.EqualTo((byte)((4 << 5) | 2)), "4.02");
        // And the server still serves.
        var (code, output) = await CoapAsync("-m", "post", "-t", "json", "-e", """{"alive": 1}""", Uri($"devices/{id}/telemetry?token={token}"));
        Assert.That(code, Is.Zero, output);
        Assert.That(await ValueAsync(id, "alive"), Is.EqualTo(1));
    }

    private static async Task<byte[]> ReceiveAsync(UdpClient udp)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        return (await udp.ReceiveAsync(timeout.Token)).Buffer;
    }

    private static async Task<byte[]> ReceiveMatchingAsync(UdpClient udp, byte idHigh, byte idLow)
    {
        while (true)
        {
            var d = await ReceiveAsync(udp);
            if (d.Length >= 4 && d[2] == idHigh && d[3] == idLow) return d;
        }
    }

    /// <summary>A CoAP request built by hand (RFC 7252 §3): POST with Uri-Path segments, one Uri-Query, JSON.</summary>
    internal static byte[] Datagram(bool confirmable, ushort messageId, byte[] token, string[] path, string? query, byte[] payload,
        (int Number, byte[] Value)? extraOption = null)
    {
        var options = new List<(int Number, byte[] Value)>();
        options.AddRange(path.Select(p => (11, Encoding.UTF8.GetBytes(p))));
        options.Add((12, [50]));
        if (query is not null) options.Add((15, Encoding.UTF8.GetBytes(query)));
        if (extraOption is { } extra) options.Add(extra);
        options = options.OrderBy(o => o.Number).ToList();
        var m = new List<byte> { (byte)(0x40 | (confirmable ? 0 : 0x10) | token.Length), 0x02, (byte)(messageId >> 8), (byte)messageId };
        m.AddRange(token);
        var last = 0;
        foreach (var (number, value) in options)
        {
            var delta = number - last;
            last = number;
            var (dn, dx) = Nibble(delta);
            var (ln, lx) = Nibble(value.Length);
            m.Add((byte)((dn << 4) | ln));
            m.AddRange(dx);
            m.AddRange(lx);
            m.AddRange(value);
        }
        if (payload.Length > 0)
        {
            m.Add(0xFF);
            m.AddRange(payload);
        }
        return m.ToArray();

        static (int, byte[]) Nibble(int v) => v < 13 ? (v, []) : v < 269 ? (13, [(byte)(v - 13)]) : (14, [(byte)((v - 269) >> 8), (byte)(v - 269)]);
    }
}
