using System.Formats.Cbor;
using System.Net;
using System.Net.Http.Headers;
using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Connectivity;

[TestFixture(Store.Sqlite)]
public sealed class CborTelemetryTests(Store store) : HubFixture(store)
{
    private static byte[] Message(Action<CborWriter> values, long? ts = null)
    {
        var w = new CborWriter();
        w.WriteStartMap(null);
        if (ts is { } t)
        {
            w.WriteTextString("ts");
            w.WriteInt64(t);
            w.WriteTextString("values");
            w.WriteStartMap(null);
            values(w);
            w.WriteEndMap();
        }
        else
        {
            values(w);
        }
        w.WriteEndMap();
        return w.Encode();
    }

    [Test]
    public async Task Cbor_over_http_is_stored_like_json()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var ts = DateTimeOffset.UtcNow.AddSeconds(-30).ToUnixTimeMilliseconds();
        var body = new ByteArrayContent(Message(w =>
        {
            w.WriteTextString("temperature"); w.WriteDouble(21.5);
            w.WriteTextString("count"); w.WriteInt32(7);
            w.WriteTextString("ok"); w.WriteBoolean(true);
            w.WriteTextString("mode"); w.WriteTextString("eco");
        }, ts));
        body.Headers.ContentType = new MediaTypeHeaderValue("application/cbor");

        using var http = Hub.WithBearer(token);
        var response = await http.PostAsync($"/api/v1/devices/{id}/telemetry", body);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), await response.Content.ReadAsStringAsync());
        using var admin = await Hub.AdminAsync();
        var latest = (await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest"))["values"]!.AsArray()
            .ToDictionary(v => v!["metric"]!.GetValue<string>(), v => v!["value"]!.ToJsonString());
        Assert.That(latest, Is.EquivalentTo(new Dictionary<string, string> { ["temperature"] = "21.5", ["count"] = "7", ["ok"] = "true", ["mode"] = "\"eco\"" }));
    }

    [Test]
    public async Task Cbor_over_mqtt5_with_its_content_type_is_stored_and_bad_cbor_gets_0x99()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token);

        var ok = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry").WithContentType("application/cbor")
            .WithPayload(Message(w => { w.WriteTextString("rpm"); w.WriteInt32(1450); })).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        var bad = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry").WithContentType("application/cbor")
            .WithPayload(new byte[] { 0xA1, 0x63, 0x72 }).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        var nan = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry").WithContentType("application/cbor")
            .WithPayload(Message(w => { w.WriteTextString("rpm"); w.WriteDouble(double.NaN); })).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());

        Assert.That(ok.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success), ok.ReasonString);
        Assert.That(bad.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.PayloadFormatInvalid));
        Assert.That(bad.ReasonString, Does.Contain("malformed CBOR"));
        Assert.That(nan.ReasonString, Does.Contain("NaN"));
    }

    [Test]
    public async Task A_cbor_string_with_a_nul_character_gets_0x99_with_the_reason()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token);

        var ack = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry").WithContentType("application/cbor")
            .WithPayload(Message(w => { w.WriteTextString("mode"); w.WriteTextString("e\0co"); })).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());

        Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.PayloadFormatInvalid));
        Assert.That(ack.ReasonString, Does.Contain("mode").And.Contain("U+0000"));
    }
}
