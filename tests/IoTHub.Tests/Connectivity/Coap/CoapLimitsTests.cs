// CoAP on a hub with small limits: a separate response when the commit takes longer than the piggyback window, 4.13
// with Size1 above the payload limit, 4.29 above the device's message rate (a block-wise answer counting once).
using System.Net;
using System.Net.Sockets;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Connectivity.Coap;

[TestFixture(Store.Sqlite)]
public sealed class CoapLimitsTests(Store store) : HubFixture(store)
{
    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        // Every CON answer misses the window: the hub acknowledges at once and answers in a CON of its own.
        ["Coap:PiggybackWindow"] = "00:00:00.001",
        ["Connectivity:MaxPayloadBytes"] = "2048",
        ["Validation:MaxPayloadBytes"] = "2048",
        ["Connectivity:DeviceMessagesPerSecond"] = "3",
    };

    private string Uri(string path) => $"coap://127.0.0.1:{Hub.CoapPort}/{path}";

    [Test]
    public async Task A_CON_whose_commit_takes_longer_than_the_window_gets_an_empty_ACK_then_its_2_04_as_a_separate_CON()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var hub = new IPEndPoint(IPAddress.Loopback, Hub.CoapPort);
        await udp.SendAsync(CoapClientTests.Datagram(true, 0x2222, [0x0A, 0x0B], ["devices", id, "telemetry"], $"token={token}", """{"sep": 1}"""u8.ToArray()), hub);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var first = (await udp.ReceiveAsync(timeout.Token)).Buffer;
        Assert.That(first, Is.EqualTo(new byte[] { 0x60, 0x00, 0x22, 0x22 }), "an empty ACK of the request's message id");
        var second = (await udp.ReceiveAsync(timeout.Token)).Buffer;
        Assert.That((second[0] >> 4) & 3, Is.Zero, "a CON");
        Assert.That(second[1], Is.EqualTo((byte)0x44), "2.04");
        Assert.That(second[4..6], Is.EqualTo(new byte[] { 0x0A, 0x0B }), "the request's token");
        await udp.SendAsync(new byte[] { 0x60, 0x00, second[2], second[3] }, hub); // acknowledge it
        using var admin = await Hub.AdminAsync();
        var latest = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest");
        Assert.That(latest["values"]!.AsArray().Select(v => v!["metric"]!.GetValue<string>()), Does.Contain("sep"));

        // libcoap handles the separate response too.
        var (code, output) = await ExternalTool.RunAsync("coap-client-openssl", "-B", "10", "-m", "post", "-t", "json", "-e", """{"sep": 2}""",
            Uri($"devices/{id}/telemetry?token={token}"));
        Assert.That(code, Is.Zero, output);
        Assert.That(output, Does.Not.Contain("4."));
    }

    [Test]
    public async Task A_message_sent_in_64_byte_blocks_counts_once_toward_the_devices_rate()
    {
        // 3 messages a second here; 1.5 KB in 64-byte Block1 blocks is 24 requests but one message (RFC 7959 §2.3).
        var (id, token) = await Hub.CreateDeviceAsync();
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var points = Enumerable.Range(0, 30).Select(i => $$$"""{"ts": {{{now - 1000 * i}}}, "values": {"blocked": {{{i}}}}}""");
        var file = Path.GetTempFileName();
        await File.WriteAllTextAsync(file, "[" + string.Join(", ", points) + "]");
        Assert.That(new FileInfo(file).Length, Is.InRange(1200, 2048), "more than 18 blocks, under the payload limit");
        var (code, output) = await ExternalTool.RunAsync("coap-client-openssl", "-B", "10", "-m", "post", "-t", "json", "-b", "64", "-f", file,
            Uri($"devices/{id}/telemetry?token={token}"));
        File.Delete(file);
        Assert.That(output, Does.Not.Contain("4.29"));
        Assert.That(code, Is.Zero, output);
        using var admin = await Hub.AdminAsync();
        var latest = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest");
        Assert.That(latest["values"]!.AsArray().Single(v => v!["metric"]!.GetValue<string>() == "blocked")!["value"]!.GetValue<double>(), Is.Zero);
    }

    [Test]
    public async Task An_answer_read_in_small_blocks_counts_as_one_message_toward_the_rate()
    {
        // Every Block2 GET counted: discovery read in 16-byte blocks (about 25) at 3 messages a second got 4.29 part way,
        // as did a firmware image read in blocks.
        var (id, token) = await Hub.CreateDeviceAsync();
        var (code, output) = await ExternalTool.RunAsync("coap-client-openssl", "-b", "16", "-B", "20", Uri($".well-known/core?token={token}"));
        Assert.That(output, Does.Not.Contain("4.29"));
        Assert.That(code, Is.Zero, output);
        Assert.That(output, Does.Contain($"</devices/{id}/firmware/progress>;rt=\"iothub.firmware.progress\";ct=50"), "every block, to the last");
    }

    [Test]
    public async Task A_payload_above_the_limit_is_4_13_with_Size1_and_a_device_above_its_rate_gets_4_29()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var big = Path.GetTempFileName();
        await File.WriteAllTextAsync(big, "{\"x\": \"" + new string('a', 3000) + "\"}");
        var (_, output) = await ExternalTool.RunAsync("coap-client-openssl", "-v", "6", "-B", "10", "-m", "post", "-t", "json", "-f", big, Uri($"devices/{id}/telemetry?token={token}"));
        File.Delete(big);
        Assert.That(output, Does.Contain("4.13"));
        Assert.That(output, Does.Contain("Size1:2048"));

        var (other, otherToken) = await Hub.CreateDeviceAsync();
        var codes = new List<byte>();
        using var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var hub = new IPEndPoint(IPAddress.Loopback, Hub.CoapPort);
        // All six at once: the rate is counted per second of the clock, and six sent one after another's 2.04 (a commit
        // each) could straddle a second's end, three in each, and none be refused.
        for (var i = 0; i < 6; i++)
            await udp.SendAsync(CoapClientTests.Datagram(true, (ushort)(0x3000 + i), [(byte)i], ["devices", other, "telemetry"], $"token={otherToken}", """{"r": 1}"""u8.ToArray()), hub);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var separate = new HashSet<int>();
        while (codes.Count < 6)
        {
            var d = (await udp.ReceiveAsync(timeout.Token)).Buffer;
            var confirmable = (d[0] >> 4 & 3) == 0;
            if (confirmable) await udp.SendAsync(new byte[] { 0x60, 0x00, d[2], d[3] }, hub); // a separate response: acknowledge it
            if (d[1] != 0 && (!confirmable || separate.Add(d[2] << 8 | d[3]))) codes.Add(d[1]); // a retransmission counts once
        }
        Assert.That(codes, Does.Contain((byte)((4 << 5) | 29)), "4.29 Too Many Requests past 3 a second");
    }
}
