// One device's message never stalls the others (issue #15 §3): values at the edge of double, a metric name whose
// reason text would be cut inside a surrogate pair, CBOR text that is not UTF-8. Before, on PostgreSQL, the first two
// made the writer retry a deterministic error forever: its share of the devices got no acks.
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Storage;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class PoisonIsolationTests(Store store) : HubFixture(store)
{
    /// <summary>Six devices (so both PostgreSQL writers own some) publishing five device-timestamped messages each
    /// while <paramref name="poison"/> runs: every one must be acknowledged and stored, within seconds.</summary>
    private async Task FleetIsAckedWhileAsync(Func<Task> poison)
    {
        var devices = new List<(string Id, string Token)>();
        for (var i = 0; i < 6; i++) devices.Add(await Hub.CreateDeviceAsync());
        var baseTs = DateTimeOffset.UtcNow.AddMinutes(-3).ToUnixTimeMilliseconds();
        var fleet = devices.Select(d => Task.Run(async () =>
        {
            using var client = await Hub.ConnectAsync(d.Id, d.Token);
            var codes = new List<MqttClientPublishReasonCode>();
            for (var i = 0; i < 5; i++)
            {
                var ack = await client.PublishAsync(Message(d.Id, $$$"""{"ts": {{{baseTs + i}}}, "values": {"ok": {{{i}}}}}"""));
                codes.Add(ack.ReasonCode);
            }
            return codes;
        })).ToList();

        await poison();

        var acks = await Task.WhenAll(fleet).WaitAsync(TimeSpan.FromSeconds(15));
        Assert.That(acks.SelectMany(a => a), Is.All.EqualTo(MqttClientPublishReasonCode.Success), "every other device is acknowledged");
        using var admin = await Hub.AdminAsync();
        var from = Uri.EscapeDataString(DateTimeOffset.FromUnixTimeMilliseconds(baseTs - 60_000).ToString("O"));
        foreach (var (id, _) in devices)
        {
            var raw = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=ok&resolution=raw&from={from}");
            Assert.That(raw["points"]!.AsArray(), Has.Count.EqualTo(5), $"{id}: every acknowledged message is stored");
        }
        using var http = Hub.Anonymous();
        Assert.That((await http.GetAsync("/health/ready")).StatusCode, Is.EqualTo(HttpStatusCode.OK), "the writer is healthy");
    }

    private static MqttApplicationMessage Message(string id, string json) => new MqttApplicationMessageBuilder()
        .WithTopic($"devices/{id}/telemetry").WithPayload(json).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build();

    private static MqttApplicationMessage Cbor(string id, byte[] payload) => new MqttApplicationMessageBuilder()
        .WithTopic($"devices/{id}/telemetry").WithPayload(payload).WithContentType("application/cbor")
        .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build();

    /// <summary>Every number in a JSON document, so a test can check that none is non-finite (JSON has no Infinity:
    /// a serializer would have failed, or written a string).</summary>
    private static IEnumerable<JsonNode> Numbers(JsonNode? node) => node switch
    {
        JsonObject o => o.SelectMany(p => Numbers(p.Value)),
        JsonArray a => a.SelectMany(Numbers),
        JsonValue v when v.GetValueKind() == System.Text.Json.JsonValueKind.Number => [v],
        _ => [],
    };

    [Test]
    public async Task Values_at_the_edge_of_double_are_stored_and_every_answer_stays_finite()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var t = DateTimeOffset.UtcNow.AddMinutes(-2).ToUnixTimeMilliseconds();
        t -= t % 60_000; // the four points of each metric fall in one minute
        const string max = "1.7976931348623157e308";
        const string low = "-1.79e308";
        var codes = new List<MqttClientPublishReasonCode>();
        await FleetIsAckedWhileAsync(async () =>
        {
            using var client = await Hub.ConnectAsync(id, token);
            foreach (var json in new[]
                     {
                         // One a message (each its own batch: the SQL merge adds them), then a resend (PostgreSQL's checked path).
                         $$$"""{"ts": {{{t}}}, "values": {"hi": {{{max}}}, "mix": {{{max}}}}}""",
                         $$$"""{"ts": {{{t + 1000}}}, "values": {"hi": {{{max}}}, "mix": {{{max}}}}}""",
                         $$$"""{"ts": {{{t + 1000}}}, "values": {"hi": {{{max}}}, "mix": {{{max}}}}}""",
                         // Two in one message (the in-memory fold adds them).
                         $$$"""[{"ts": {{{t + 2000}}}, "values": {"lo": {{{low}}}, "mix": {{{low}}}}}, {"ts": {{{t + 3000}}}, "values": {"lo": {{{low}}}, "mix": {{{low}}}}}]""",
                     })
                codes.Add((await client.PublishAsync(Message(id, json))).ReasonCode);
        });

        Assert.That(codes, Is.All.EqualTo(MqttClientPublishReasonCode.Success), "values a double holds are valid");
        using var admin = await Hub.AdminAsync();
        var from = Uri.EscapeDataString(DateTimeOffset.FromUnixTimeMilliseconds(t - 3_600_000).ToString("O"));
        var answers = new List<JsonNode> { await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest") };
        foreach (var metric in new[] { "hi", "lo", "mix" })
            foreach (var resolution in new[] { "raw", "1m", "1h", "1d", "auto" })
                answers.Add(await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric={metric}&resolution={resolution}&from={from}"));
        Assert.That(answers.SelectMany(Numbers).Select(n => n.GetValue<double>()), Is.All.Matches<double>(double.IsFinite));

        foreach (var resolution in new[] { "1m", "1h", "1d" })
        {
            var hi = (await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=hi&resolution={resolution}&from={from}"))["points"]!.AsArray().Single()!;
            Assert.That((hi["count"]!.GetValue<long>(), hi["sum"]!.GetValue<double>(), hi["avg"]!.GetValue<double>(), hi["max"]!.GetValue<double>()),
                Is.EqualTo((2L, double.MaxValue, double.MaxValue, double.MaxValue)), $"hi {resolution}: the sum saturates, the average stays within [min, max]");
            var lo = (await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=lo&resolution={resolution}&from={from}"))["points"]!.AsArray().Single()!;
            Assert.That((lo["count"]!.GetValue<long>(), lo["sum"]!.GetValue<double>(), lo["avg"]!.GetValue<double>()),
                Is.EqualTo((2L, double.MinValue, -1.79e308)), $"lo {resolution}");
            var mix = (await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=mix&resolution={resolution}&from={from}"))["points"]!.AsArray().Single()!;
            Assert.That((mix["count"]!.GetValue<long>(), mix["min"]!.GetValue<double>(), mix["max"]!.GetValue<double>(), mix["last"]!.GetValue<double>()),
                Is.EqualTo((4L, -1.79e308, double.MaxValue, -1.79e308)), $"mix {resolution}");
        }
    }

    private static readonly string SixtyThreeBangsAndAnEmoji = new string('!', 63) + "\U0001F600";

    [TestCase(MqttProtocolVersion.V500)]
    [TestCase(MqttProtocolVersion.V311)]
    public async Task A_metric_name_whose_reason_would_be_cut_inside_a_surrogate_pair_is_dead_lettered_and_stalls_no_other_device(MqttProtocolVersion version)
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        MqttClientPublishResult? ack = null;
        await FleetIsAckedWhileAsync(async () =>
        {
            using var client = await Hub.ConnectAsync(id, token, version);
            ack = await client.PublishAsync(Message(id, $$"""{"{{SixtyThreeBangsAndAnEmoji}}": 1}""")).WaitAsync(TimeSpan.FromSeconds(15));
        });

        if (version == MqttProtocolVersion.V500)
        {
            Assert.That(ack!.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.PayloadFormatInvalid));
            Assert.That(ack.ReasonString, Does.Contain("metric names must be"));
        }
        else
        {
            Assert.That(ack!.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success), "3.1.1: dead-lettered and acked");
        }
        using var admin = await Hub.AdminAsync();
        var reason = (await admin.GetJsonAsync($"/api/v1/dead-letters?deviceId={id}"))["items"]!.AsArray().Single()!["reason"]!.GetValue<string>();
        Assert.That(reason, Does.StartWith(new string('!', 63)).And.Contain("metric names must be"));
        Assert.That(reason.EnumerateRunes().All(r => r.Value != 0xFFFD), Is.True, $"cut on a character boundary, nothing replaced: {reason}");
    }

    [Test]
    public async Task The_same_metric_name_over_http_gets_a_400_naming_it_whole_or_not_at_all()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        HttpResponseMessage? response = null;
        await FleetIsAckedWhileAsync(async () =>
        {
            using var http = Hub.WithBearer(token);
            response = await http.PostAsync($"/api/v1/devices/{id}/telemetry", Json.Body($$"""{"{{SixtyThreeBangsAndAnEmoji}}": 1}"""));
        });

        Assert.That(response!.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        var body = await response.Content.ReadAsStringAsync();
        Assert.That(body, Does.Contain(new string('!', 63)));
        Assert.That(body, Does.Not.Contain("\\uD83D\"").IgnoreCase.And.Not.Contain("\uFFFD"), "no lone high surrogate where the name was cut");
    }

    [TestCase(new byte[] { 0xFF, 0xFE }, TestName = "Cbor_text_values_that_are_not_utf8_are_refused_with_a_reason(FF FE)")]
    [TestCase(new byte[] { (byte)'o', (byte)'k', 0xC3 }, TestName = "Cbor_text_values_that_are_not_utf8_are_refused_with_a_reason(cut sequence)")]
    [TestCase(new byte[] { 0xED, 0xA0, 0x80 }, TestName = "Cbor_text_values_that_are_not_utf8_are_refused_with_a_reason(encoded surrogate)")]
    public async Task Cbor_text_values_that_are_not_utf8_are_refused_with_a_reason(byte[] bad)
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        // A map {"mode": <text string of the bad bytes>}, written by hand: CborWriter only writes valid UTF-8.
        var payload = new List<byte> { 0xA1, 0x64 };
        payload.AddRange("mode"u8.ToArray());
        payload.Add((byte)(0x60 + bad.Length));
        payload.AddRange(bad);
        MqttClientPublishResult? ack = null;
        await FleetIsAckedWhileAsync(async () =>
        {
            using var client = await Hub.ConnectAsync(id, token);
            ack = await client.PublishAsync(Cbor(id, payload.ToArray()));
        });

        Assert.That(ack!.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.PayloadFormatInvalid));
        Assert.That(ack.ReasonString, Does.Contain("not valid UTF-8"));
        using var admin = await Hub.AdminAsync();
        var latest = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest");
        Assert.That(latest["values"]!.AsArray(), Is.Empty, "nothing was stored with replacement characters");

        using var http = Hub.WithBearer(token);
        var body = new ByteArrayContent(payload.ToArray());
        body.Headers.ContentType = new MediaTypeHeaderValue("application/cbor");
        var response = await http.PostAsync($"/api/v1/devices/{id}/telemetry", body);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await response.Content.ReadAsStringAsync(), Does.Contain("not valid UTF-8"));
    }

    [Test]
    public async Task A_cbor_metric_name_that_is_not_utf8_is_refused_like_json()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        byte[] payload = [0xA1, 0x62, 0xC3, 0x28, 0x01]; // {"\xC3(": 1}
        using var client = await Hub.ConnectAsync(id, token);

        var ack = await client.PublishAsync(Cbor(id, payload));

        Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.PayloadFormatInvalid));
        Assert.That(ack.ReasonString, Does.Contain("not valid UTF-8"));
    }
}
