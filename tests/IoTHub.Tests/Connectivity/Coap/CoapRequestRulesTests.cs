// RFC 7252 and RFC 7959 rules a request meets before and around its resource, found by an outside tester of CoAP
// discovery: a NON GET is answered, a GET's answer comes in the Block2 size asked for, a bad critical option is 4.02, a
// proxy request 5.05, conditions (If-Match, If-None-Match) are kept, and a JSON-only resource refuses other formats.
// libcoap's client where it can say it; hand-built messages where a test needs exact options. On both stores.
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using IoTHub.Connectivity.Coap;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Connectivity.Coap;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class CoapRequestRulesTests(Store store) : HubFixture(store)
{
    private const string Client = "coap-client-openssl";
    private static int _messageId = 0x5000;

    private string Uri(string path) => $"coap://127.0.0.1:{Hub.CoapPort}/{path}";

    /// <summary>A CON GET of the discovery resource with the device's token and the given extra options.</summary>
    private static CoapMessage Get(string token, string path = ".well-known/core", params CoapOption[] options)
    {
        var m = new CoapMessage { Type = CoapType.Confirmable, Code = CoapCode.Get, MessageId = (ushort)Interlocked.Increment(ref _messageId), Token = new byte[] { 7, 1 } };
        m.SetUriPath(path);
        m.AddStringOption(CoapOptionNumber.UriQuery, "token=" + token);
        foreach (var o in options) m.AddOption(o);
        return m;
    }

    /// <summary>A UDP socket talking to the hub's CoAP port: sends requests, returns answers, acknowledges CONs.</summary>
    private sealed class Peer(int port) : IDisposable
    {
        private readonly UdpClient _udp = new(new IPEndPoint(IPAddress.Loopback, 0));
        private readonly IPEndPoint _hub = new(IPAddress.Loopback, port);
        private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(20));

        public async Task SendAsync(CoapMessage request) => await _udp.SendAsync(CoapCodec.Encode(request), _hub);

        /// <summary>The next answer or notification with a code (an empty ACK is skipped; a CON is acknowledged).</summary>
        public async Task<CoapMessage> NextAsync()
        {
            while (true)
            {
                var datagram = (await _udp.ReceiveAsync(_timeout.Token)).Buffer;
                Assert.That(CoapCodec.TryDecode(datagram, out var answer, out _), Is.EqualTo(CoapFormatError.None));
                if (answer!.Type == CoapType.Confirmable) await _udp.SendAsync(CoapCodec.Encode(CoapMessage.Empty(CoapType.Acknowledgement, answer.MessageId)), _hub);
                if (!answer.Code.IsEmpty) return answer;
            }
        }

        /// <summary>The next datagram within <paramref name="wait"/>, or null when none comes.</summary>
        public async Task<CoapMessage?> NextWithinAsync(TimeSpan wait)
        {
            using var cts = new CancellationTokenSource(wait);
            try
            {
                var datagram = (await _udp.ReceiveAsync(cts.Token)).Buffer;
                return CoapCodec.TryDecode(datagram, out var answer, out _) == CoapFormatError.None ? answer : null;
            }
            catch (OperationCanceledException)
            {
                return null;
            }
        }

        public void Dispose()
        {
            _udp.Dispose();
            _timeout.Dispose();
        }
    }

    /// <summary>Sends a request and returns its answer (piggybacked, or the separate CON after an empty ACK).</summary>
    private async Task<CoapMessage> ExchangeAsync(CoapMessage request)
    {
        using var peer = new Peer(Hub.CoapPort);
        await peer.SendAsync(request);
        return await peer.NextAsync();
    }

    /// <summary>A peer observing <paramref name="path"/> with the device's token, past its first answer.</summary>
    private async Task<Peer> ObserveAsync(string token, string path, params CoapOption[] extra)
    {
        var peer = new Peer(Hub.CoapPort);
        await peer.SendAsync(Get(token, path, [CoapOption.UInt(CoapOptionNumber.Observe, 0), .. extra]));
        Assert.That((await peer.NextAsync()).Observe, Is.Not.Null, "registered");
        return peer;
    }

    private static string Text(CoapMessage m) => Encoding.UTF8.GetString(m.Payload.Span);

    [Test]
    public async Task A_NON_GET_is_answered_with_a_NON()
    {
        // It was taken without a reply, like a NON POST of telemetry: a GET exists for its answer (RFC 7252 §5.2.3).
        var (id, token) = await Hub.CreateDeviceAsync();
        var (_, output) = await ExternalTool.RunAsync(Client, "-N", "-B", "10", Uri($".well-known/core?token={token}"));
        Assert.That(output, Does.Contain($"</devices/{id}/telemetry>"));
        (_, output) = await ExternalTool.RunAsync(Client, "-N", "-B", "10", Uri($"devices/{id}/state/desired?token={token}"));
        Assert.That(output, Does.Contain("\"version\""));

        var request = Get(token);
        request.Type = CoapType.NonConfirmable;
        var answer = await ExchangeAsync(request);
        Assert.That(answer.Type, Is.EqualTo(CoapType.NonConfirmable));
        Assert.That(answer.Code, Is.EqualTo(CoapCode.Content));
        Assert.That(answer.Token.ToArray(), Is.EqualTo(request.Token.ToArray()));
    }

    [Test]
    public async Task A_GET_asking_for_small_blocks_gets_its_answer_in_blocks_of_that_size()
    {
        // The whole answer came in one message whatever Block2 size the client asked for (RFC 7959 §2.4: MUST use the
        // size indicated or a smaller one).
        var (_, token) = await Hub.CreateDeviceAsync();
        var whole = Text(await ExchangeAsync(Get(token)));
        var assembled = new StringBuilder();
        for (uint n = 0; ; n++)
        {
            var answer = await ExchangeAsync(Get(token, options: CoapOption.UInt(CoapOptionNumber.Block2, new CoapBlock(n, false, 0).Encode())));
            Assert.That(answer.Code, Is.EqualTo(CoapCode.Content));
            Assert.That(answer.Payload.Length, Is.LessThanOrEqualTo(16));
            Assert.That(answer.Block2!.Value.Number, Is.EqualTo(n));
            Assert.That(answer.HasOption(CoapOptionNumber.ETag), Is.True, "an ETag tells the blocks of one representation");
            if (n == 0) Assert.That(answer.Size2, Is.EqualTo((uint)Encoding.UTF8.GetByteCount(whole)));
            assembled.Append(Text(answer));
            if (!answer.Block2.Value.More) break;
        }
        Assert.That(assembled.ToString(), Is.EqualTo(whole));

        var past = await ExchangeAsync(Get(token, options: CoapOption.UInt(CoapOptionNumber.Block2, new CoapBlock(1000, false, 0).Encode())));
        Assert.That(past.Code, Is.EqualTo(CoapCode.BadOption));

        // libcoap's client asks for 16-byte blocks and puts them together.
        var (_, output) = await ExternalTool.RunAsync(Client, "-b", "16", "-B", "10", Uri($".well-known/core?token={token}"));
        Assert.That(output, Does.Contain(whole));
    }

    [Test]
    public async Task A_notification_larger_than_a_block_carries_its_first_block_and_the_observer_GETs_the_rest()
    {
        // A 3 KB desired state went out as one 3 KB datagram (RFC 7959 §2.6: a notification carries the first block).
        var (id, token) = await Hub.CreateDeviceAsync();
        using var observer = await ObserveAsync(token, $"devices/{id}/state/desired");

        var label = new string('x', 3000);
        using var admin = await Hub.AdminAsync();
        (await admin.PutAsJsonAsync($"/api/v1/devices/{id}/state", new { desired = new { label } })).EnsureSuccessStatusCode();
        var notification = await observer.NextAsync();
        Assert.That(notification.Observe, Is.Not.Null);
        Assert.That(notification.Block2, Is.EqualTo(new CoapBlock(0, true, CoapBlock2.DefaultSizeExponent)));
        Assert.That(notification.Payload.Length, Is.EqualTo(1024));
        var etag = notification.GetOption(CoapOptionNumber.ETag)!.Value.Value.ToArray();
        var body = new StringBuilder(Text(notification));
        for (uint n = 1; ; n++)
        {
            var next = await ExchangeAsync(Get(token, $"devices/{id}/state/desired", CoapOption.UInt(CoapOptionNumber.Block2, new CoapBlock(n, false, CoapBlock2.DefaultSizeExponent).Encode())));
            Assert.That(next.GetOption(CoapOptionNumber.ETag)!.Value.Value.ToArray(), Is.EqualTo(etag), "the same representation");
            body.Append(Text(next));
            if (!next.Block2!.Value.More) break;
        }
        Assert.That(body.ToString(), Does.Contain($"\"label\":\"{label}\""));
        Assert.That(notification.Size2, Is.EqualTo((uint)Encoding.UTF8.GetByteCount(body.ToString())));
    }

    [Test]
    public async Task A_message_id_reused_from_one_address_with_another_token_is_a_new_request_not_the_cached_answer()
    {
        // The exchange cache answered by address and message id alone: a second device behind the same NAT mapping (or
        // one rebooted onto the same port) reusing a message id within 247 s got the first device's answer.
        var (a, tokenA) = await Hub.CreateDeviceAsync();
        var (b, tokenB) = await Hub.CreateDeviceAsync();
        using var peer = new Peer(Hub.CoapPort);
        var first = Get(tokenA);
        await peer.SendAsync(first);
        Assert.That(Text(await peer.NextAsync()), Does.Contain($"</devices/{a}/"));
        var second = Get(tokenB);
        second.MessageId = first.MessageId;
        second.Token = new byte[] { 9, 9 };
        await peer.SendAsync(second);
        var answer = await peer.NextAsync();
        Assert.That(Text(answer), Does.Contain($"</devices/{b}/").And.Not.Contain(a));

        // A retransmission (same message id and token) is still answered from the cache, with the same bytes.
        await peer.SendAsync(second);
        Assert.That(Text(await peer.NextAsync()), Is.EqualTo(Text(answer)));
    }

    [Test]
    public async Task Notifications_come_in_the_block_size_the_observer_registered_with()
    {
        // They came in 1024-byte blocks whatever the registration asked for (RFC 7641 §3.2, RFC 7959 §2.4).
        var (id, token) = await Hub.CreateDeviceAsync();
        using var observer = await ObserveAsync(token, $"devices/{id}/state/desired", CoapOption.UInt(CoapOptionNumber.Block2, new CoapBlock(0, false, 2).Encode()));
        using var admin = await Hub.AdminAsync();
        (await admin.PutAsJsonAsync($"/api/v1/devices/{id}/state", new { desired = new { label = new string('y', 300) } })).EnsureSuccessStatusCode();
        var notification = await observer.NextAsync();
        Assert.That(notification.Block2, Is.EqualTo(new CoapBlock(0, true, 2)));
        Assert.That(notification.Payload.Length, Is.EqualTo(64));
    }

    [Test]
    public async Task A_registration_answered_with_a_block_past_the_end_registers_nothing()
    {
        // The 4.02 told the client it was not registered (RFC 7641 §4.1) while the hub kept notifying it.
        var (id, token) = await Hub.CreateDeviceAsync();
        var answer = await ExchangeAsync(Get(token, $"devices/{id}/state/desired", CoapOption.UInt(CoapOptionNumber.Observe, 0),
            CoapOption.UInt(CoapOptionNumber.Block2, new CoapBlock(50, false, 0).Encode())));
        Assert.That(answer.Code, Is.EqualTo(CoapCode.BadOption));
        var observers = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<CoapObservers>(Hub.Services);
        Assert.That(observers.Observes(id), Is.False);
    }

    [Test]
    public async Task A_NON_with_an_unrecognized_critical_option_is_rejected_unanswered_and_a_block_size_of_2048_is_4_00()
    {
        var (_, token) = await Hub.CreateDeviceAsync();
        using var peer = new Peer(Hub.CoapPort);
        var non = Get(token, options: new CoapOption(9, "x"u8.ToArray()));
        non.Type = CoapType.NonConfirmable;
        await peer.SendAsync(non);
        await peer.SendAsync(Get(token));
        // RFC 7252 §5.4.1: such a NON is rejected (it was answered 4.02 as a NON); the CON after it is answered.
        var first = await peer.NextAsync();
        Assert.That(first.Code, Is.EqualTo(CoapCode.Content), $"{first}");
        Assert.That(first.Type, Is.EqualTo(CoapType.Acknowledgement));
        Assert.That(await peer.NextWithinAsync(TimeSpan.FromSeconds(1)), Is.Null, "nothing comes for the NON");

        // SZX 7 is reserved: 4.00 (RFC 7959 §2.2), not 4.02 as other options out of range.
        var reserved = await ExchangeAsync(Get(token, options: new CoapOption(CoapOptionNumber.Block2, new byte[] { 0x07 })));
        Assert.That(reserved.Code, Is.EqualTo(CoapCode.BadRequest));
    }

    [Test]
    public async Task A_large_command_goes_to_its_observer_whole_as_no_GET_could_fetch_the_rest()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var observer = await ObserveAsync(token, $"devices/{id}/commands");
        var note = new string('n', 2000);
        using var admin = await Hub.AdminAsync();
        var send = admin.PostAsJsonAsync($"/api/v1/devices/{id}/commands", new { name = "annotate", @params = new { note }, timeoutSeconds = 2 });
        var notification = await observer.NextAsync();
        Assert.That(notification.Block2, Is.Null);
        Assert.That(Text(notification), Does.Contain(note).And.Contain("\"commandId\""));
        await send;
    }

    [Test]
    public async Task A_critical_option_given_twice_is_4_02_and_a_proxy_request_5_05()
    {
        var (_, token) = await Hub.CreateDeviceAsync();
        var twice = Get(token, options: [CoapOption.UInt(CoapOptionNumber.Accept, 40), CoapOption.UInt(CoapOptionNumber.Accept, 40)]);
        var answer = await ExchangeAsync(twice);
        Assert.That(answer.Code, Is.EqualTo(CoapCode.BadOption), "RFC 7252 §5.4.5: treated as an unrecognized critical option (it was 4.00)");
        Assert.That(Text(answer), Does.Contain("repeated"));

        var proxied = Get(token, options: CoapOption.String(CoapOptionNumber.ProxyUri, $"coap://127.0.0.1/.well-known/core?token={token}"));
        Assert.That((await ExchangeAsync(proxied)).Code, Is.EqualTo(CoapCode.ProxyingNotSupported), "RFC 7252 §5.7.2 (it was 4.04)");
    }

    [Test]
    public async Task A_condition_that_does_not_hold_is_4_12_and_nothing_is_done()
    {
        // If-Match and If-None-Match were ignored (RFC 7252 §5.10.8).
        var (id, token) = await Hub.CreateDeviceAsync();
        Assert.That((await ExchangeAsync(Get(token, options: new CoapOption(CoapOptionNumber.IfNoneMatch, Array.Empty<byte>())))).Code,
            Is.EqualTo(CoapCode.PreconditionFailed), "If-None-Match: the resource exists");
        Assert.That((await ExchangeAsync(Get(token, options: new CoapOption(CoapOptionNumber.IfMatch, "abc"u8.ToArray())))).Code,
            Is.EqualTo(CoapCode.PreconditionFailed), "If-Match with an ETag the resource does not have");
        Assert.That((await ExchangeAsync(Get(token, options: new CoapOption(CoapOptionNumber.IfMatch, Array.Empty<byte>())))).Code,
            Is.EqualTo(CoapCode.Content), "If-Match with an empty value: the resource exists");

        var post = Get(token, $"devices/{id}/telemetry", new CoapOption(CoapOptionNumber.IfNoneMatch, Array.Empty<byte>()));
        post.Code = CoapCode.Post;
        post.Payload = """{"guarded": 1}"""u8.ToArray();
        Assert.That((await ExchangeAsync(post)).Code, Is.EqualTo(CoapCode.PreconditionFailed));
        using var admin = await Hub.AdminAsync();
        Assert.That((await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest"))["values"]!.AsArray(), Is.Empty, "the refused POST stored nothing");
    }

    [Test]
    public async Task Nothing_pending_is_an_empty_2_05_without_a_content_format()
    {
        // It was labelled JSON (50) with an empty payload, which is no JSON document.
        var (id, token) = await Hub.CreateDeviceAsync();
        var answer = await ExchangeAsync(Get(token, $"devices/{id}/firmware/pending"));
        Assert.That(answer.Code, Is.EqualTo(CoapCode.Content));
        Assert.That(answer.Payload.Length, Is.Zero);
        Assert.That(answer.ContentFormat, Is.Null);
    }

    [TestCase("firmware/progress")]
    [TestCase("commands/c-1/response")]
    public async Task A_JSON_only_resource_refuses_another_content_format_with_4_15(string resource)
    {
        // Firmware progress in CBOR was read as JSON and answered 4.00 "not valid JSON"; state/reported said 4.15.
        var (id, token) = await Hub.CreateDeviceAsync();
        var file = Path.GetTempFileName();
        await File.WriteAllBytesAsync(file, [0xA1, 0x61, 0x73, 0x01]); // CBOR {"s": 1}
        var (_, output) = await ExternalTool.RunAsync(Client, "-B", "10", "-m", "post", "-t", "cbor", "-f", file, Uri($"devices/{id}/{resource}?token={token}"));
        File.Delete(file);
        Assert.That(output, Does.Contain("4.15"));
    }
}
