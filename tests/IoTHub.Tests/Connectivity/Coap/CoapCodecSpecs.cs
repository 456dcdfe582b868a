// Fast specifications of the CoAP message codec (RFC 7252 §3, RFC 7959 §2.2): exact bytes of hand-built messages,
// round trips at every delta/length boundary, every malformed shape, and seeded fuzzing. No host, no sockets.
using System.Runtime.InteropServices;
using System.Text;
using IoTHub.Connectivity.Coap;

namespace IoTHub.Tests.Connectivity.Coap;

public sealed class CoapCodecSpecs
{
    private static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    private static byte[] Ascii(string text) => Encoding.ASCII.GetBytes(text);

    private static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    private static CoapMessage Decoded(byte[] datagram)
    {
        var error = CoapCodec.TryDecode(datagram, out var message, out _);
        Assert.That(error, Is.EqualTo(CoapFormatError.None), Convert.ToHexString(datagram));
        return message!;
    }

    private static CoapFormatError ErrorOf(byte[] datagram) => CoapCodec.TryDecode(datagram, out _, out _);

    private static void AssertSame(CoapMessage actual, CoapMessage expected)
    {
        Assert.That(actual.Type, Is.EqualTo(expected.Type), "type");
        Assert.That(actual.Code, Is.EqualTo(expected.Code), "code");
        Assert.That(actual.MessageId, Is.EqualTo(expected.MessageId), "message id");
        Assert.That(actual.Token.ToArray(), Is.EqualTo(expected.Token.ToArray()), "token");
        Assert.That(actual.Options, Is.EqualTo(expected.Options), "options");
        Assert.That(actual.Payload.ToArray(), Is.EqualTo(expected.Payload.ToArray()), "payload");
    }

    /// <summary>Encodes, decodes, and checks the decoded message is the original and re-encodes to the same bytes.</summary>
    private static byte[] RoundTrip(CoapMessage message)
    {
        var bytes = CoapCodec.Encode(message);
        Assert.That(bytes, Has.Length.EqualTo(CoapCodec.EncodedLength(message)));
        var decoded = Decoded(bytes);
        AssertSame(decoded, message);
        Assert.That(CoapCodec.Encode(decoded), Is.EqualTo(bytes));
        return bytes;
    }

    // ---- The RFC's examples, byte by byte -------------------------------------------------------------------------

    [Test]
    public void A_confirmable_get_of_temperature_is_header_then_one_uri_path_option()
    {
        // The first exchange of RFC 7252 Appendix A: CON [0x7d34] GET /temperature, bytes computed by hand.
        // 0x40: Ver 01, T 00 (CON), TKL 0000. 0x01: GET. 0x7d34: Message ID. 0xBB: delta 11 (Uri-Path), length 11.
        var request = new CoapMessage { Type = CoapType.Confirmable, Code = CoapCode.Get, MessageId = 0x7d34 };
        request.SetUriPath("/temperature");
        var bytes = CoapCodec.Encode(request);
        Assert.That(Convert.ToHexString(bytes), Is.EqualTo("40017D34BB" + Convert.ToHexString(Ascii("temperature"))));
        Assert.That(bytes, Has.Length.EqualTo(16));
        var decoded = Decoded(bytes);
        Assert.That(decoded.UriPath, Is.EqualTo(new[] { "temperature" }));
        Assert.That(decoded.Code.IsRequest, Is.True);
    }

    [Test]
    public void A_piggybacked_content_response_is_an_ack_with_the_same_message_id_and_the_payload_after_the_marker()
    {
        // Its piggybacked answer, ACK [0x7d34] 2.05 with a text payload. 0x60: Ver 01, T 10 (ACK), TKL 0. 0x45: 2.05 = 010 00101.
        var request = Decoded(Hex("40 01 7D 34 BB").Concat(Ascii("temperature")).ToArray());
        var response = CoapMessage.Response(request, CoapType.Acknowledgement, CoapCode.Content);
        response.Payload = Ascii("22.5 C");
        Assert.That(Convert.ToHexString(CoapCodec.Encode(response)), Is.EqualTo("60457D34FF" + Convert.ToHexString(Ascii("22.5 C"))));
    }

    [Test]
    public void A_token_follows_the_header_and_a_content_format_follows_uri_path_by_delta_1()
    {
        // CON [0x7d38] POST token 0x71 /t with Content-Format 50 and payload "{}":
        // 0x41 TKL 1, 0x02 POST, 7D38, token 71, B1 't' (delta 11 len 1), 11 32 (delta 1 len 1: 50), FF 7B7D.
        var request = new CoapMessage { Type = CoapType.Confirmable, Code = CoapCode.Post, MessageId = 0x7d38, Token = new byte[] { 0x71 }, Payload = Ascii("{}") };
        request.ContentFormat = CoapContentFormat.Json;
        request.SetUriPath("t");
        Assert.That(Convert.ToHexString(RoundTrip(request)), Is.EqualTo("41027D3871B1741132FF7B7D"));
    }

    [Test]
    public void An_empty_ack_is_four_bytes_and_an_empty_reset_too()
    {
        Assert.That(Convert.ToHexString(CoapCodec.Encode(CoapMessage.Empty(CoapType.Acknowledgement, 0x1234))), Is.EqualTo("60001234"));
        Assert.That(Convert.ToHexString(CoapCodec.Encode(CoapMessage.Empty(CoapType.Reset, 0x1234))), Is.EqualTo("70001234"));
        Assert.That(Convert.ToHexString(CoapCodec.Encode(CoapMessage.Empty(CoapType.Confirmable, 1))), Is.EqualTo("40000001"), "a CoAP ping");
        Assert.That(Decoded(Hex("70001234")).Code.IsEmpty, Is.True);
    }

    // ---- Delta and length boundaries (RFC 7252 §3.1) ----------------------------------------------------------------

    [TestCase(0, "00")]
    [TestCase(12, "C0")]
    [TestCase(13, "D0 00")]
    [TestCase(268, "D0 FF")]
    [TestCase(269, "E0 00 00")]
    [TestCase(65535, "E0 FE F2")]
    public void An_option_delta_takes_a_nibble_up_to_12_then_one_byte_minus_13_then_two_bytes_minus_269(int number, string head)
    {
        var message = new CoapMessage { Code = CoapCode.Get, MessageId = 7 };
        message.AddOption((ushort)number, ReadOnlyMemory<byte>.Empty);
        Assert.That(RoundTrip(message), Is.EqualTo(Concat(Hex("40 01 00 07"), Hex(head))));
    }

    [TestCase(0, "20")]
    [TestCase(12, "2C")]
    [TestCase(13, "2D 00")]
    [TestCase(268, "2D FF")]
    [TestCase(269, "2E 00 00")]
    [TestCase(65804, "2E FF FF")]
    public void An_option_length_takes_a_nibble_up_to_12_then_one_byte_minus_13_then_two_bytes_minus_269(int length, string head)
    {
        var value = Enumerable.Range(0, length).Select(i => (byte)(i * 7)).ToArray();
        var message = new CoapMessage { Code = CoapCode.Post, MessageId = 7, Payload = new byte[] { 1 } };
        message.AddOption(2, value);
        Assert.That(RoundTrip(message), Is.EqualTo(Concat(Hex("40 02 00 07"), Hex(head), value, Hex("FF 01"))));
    }

    [Test]
    public void Deltas_and_lengths_at_their_boundaries_together_round_trip()
    {
        var message = new CoapMessage { Type = CoapType.NonConfirmable, Code = CoapCode.Put, MessageId = 65535, Token = Hex("0102030405060708") };
        ushort number = 0;
        foreach (var step in new[] { 0, 12, 13, 268, 269, 1000 })
        {
            number += (ushort)step;
            foreach (var length in new[] { 0, 12, 13, 268, 269 }) message.AddOption(number, new byte[length]);
        }
        message.Payload = new byte[300];
        RoundTrip(message);
    }

    [Test]
    public void A_delta_of_65804_or_a_sum_past_65535_is_not_an_option_number()
    {
        Assert.That(ErrorOf(Hex("40 01 00 07 E0 FF FF")), Is.EqualTo(CoapFormatError.OptionNumberTooLarge));
        Assert.That(ErrorOf(Hex("40 01 00 07 E0 FE F2 10")), Is.EqualTo(CoapFormatError.OptionNumberTooLarge), "65535 then delta 1");
        Assert.That(ErrorOf(Hex("40 01 00 07 E0 FE F1 10")), Is.EqualTo(CoapFormatError.None), "65534 then delta 1");
    }

    // ---- Options: repeats, order, formats ---------------------------------------------------------------------------

    [Test]
    public void Repeated_options_take_delta_0_and_keep_their_order()
    {
        var message = new CoapMessage { Code = CoapCode.Get, MessageId = 1 };
        message.SetUriPath("/a/b/c");
        message.AddStringOption(CoapOptionNumber.UriQuery, "x=1");
        message.AddStringOption(CoapOptionNumber.UriQuery, "y=2");
        var bytes = RoundTrip(message);
        Assert.That(Convert.ToHexString(bytes), Is.EqualTo("40010001" + "B161" + "0162" + "0163" + "43783D31" + "03793D32"));
        var decoded = Decoded(bytes);
        Assert.That(decoded.UriPath, Is.EqualTo(new[] { "a", "b", "c" }));
        Assert.That(decoded.UriQuery, Is.EqualTo(new[] { "x=1", "y=2" }));
    }

    [Test]
    public void Options_given_out_of_order_are_written_sorted_by_number_keeping_the_order_of_repeats()
    {
        var message = new CoapMessage { Code = CoapCode.Post, MessageId = 2 };
        message.Options.Add(CoapOption.String(CoapOptionNumber.UriQuery, "q"));
        message.Options.Add(CoapOption.String(CoapOptionNumber.UriPath, "x"));
        message.Options.Add(CoapOption.UInt(CoapOptionNumber.ContentFormat, 60));
        message.Options.Add(CoapOption.String(CoapOptionNumber.UriPath, "y"));
        var listed = message.Options.ToArray();
        var bytes = CoapCodec.Encode(message);
        Assert.That(Convert.ToHexString(bytes), Is.EqualTo("40020002" + "B178" + "0179" + "113C" + "3171"));
        Assert.That(message.Options, Is.EqualTo(listed), "the encoder does not reorder the caller's list");
        Assert.That(Decoded(bytes).UriPath, Is.EqualTo(new[] { "x", "y" }));
    }

    [Test]
    public void Many_options_out_of_order_are_sorted_stably_too()
    {
        var message = new CoapMessage { Code = CoapCode.Post, MessageId = 3 };
        var random = new Random(7252);
        for (var i = 0; i < 200; i++) message.Options.Add(new CoapOption((ushort)random.Next(100, 140), new byte[] { (byte)i }));  // unregistered numbers: repeatable
        var expected = message.Options.Select((o, i) => (o, i)).OrderBy(p => p.o.Number).ThenBy(p => p.i).Select(p => p.o).ToArray();
        var decoded = Decoded(CoapCodec.Encode(message));
        Assert.That(decoded.Options, Is.EqualTo(expected));
    }

    [Test]
    public void The_helpers_keep_the_option_list_sorted_and_set_replaces_every_occurrence()
    {
        var message = new CoapMessage();
        message.AddStringOption(CoapOptionNumber.UriQuery, "a");
        message.AddStringOption(CoapOptionNumber.UriPath, "p");
        message.AddUIntOption(CoapOptionNumber.ETag, 1);
        message.AddUIntOption(CoapOptionNumber.ETag, 2);
        message.AddStringOption(CoapOptionNumber.UriPath, "q");
        Assert.That(message.Options.Select(o => o.Number), Is.EqualTo(new[] { 4, 4, 11, 11, 15 }));
        Assert.That(message.GetStrings(CoapOptionNumber.UriPath), Is.EqualTo(new[] { "p", "q" }));
        message.SetOption(CoapOptionNumber.ETag, new byte[] { 9 });
        message.SetUIntOption(CoapOptionNumber.MaxAge, 30);
        Assert.That(message.Options.Select(o => o.Number), Is.EqualTo(new[] { 4, 11, 11, 14, 15 }));
        Assert.That(message.GetOption(CoapOptionNumber.ETag)!.Value.Value.ToArray(), Is.EqualTo(new byte[] { 9 }));
        Assert.That(message.RemoveOption(CoapOptionNumber.UriPath), Is.EqualTo(2));
        Assert.That(message.HasOption(CoapOptionNumber.UriPath), Is.False);
        Assert.That(message.UriPath, Is.Null);
    }

    [TestCase(0u, "")]
    [TestCase(1u, "01")]
    [TestCase(255u, "FF")]
    [TestCase(256u, "0100")]
    [TestCase(65535u, "FFFF")]
    [TestCase(65536u, "010000")]
    [TestCase(0xFFFFFFu, "FFFFFF")]
    [TestCase(0x1000000u, "01000000")]
    [TestCase(uint.MaxValue, "FFFFFFFF")]
    public void A_uint_option_takes_the_fewest_big_endian_bytes_and_zero_none(uint value, string hex)
    {
        var option = CoapOption.UInt(CoapOptionNumber.MaxAge, value);
        Assert.That(Convert.ToHexString(option.Value.Span), Is.EqualTo(hex));
        Assert.That(option.AsUInt(), Is.EqualTo(value));
        Assert.That(CoapOption.UIntLength(value), Is.EqualTo(hex.Length / 2));
    }

    [Test]
    public void A_uint_value_with_leading_zeros_reads_the_same_and_one_over_4_bytes_is_not_a_uint()
    {
        Assert.That(new CoapOption(14, Hex("0005")).AsUInt(), Is.EqualTo(5u));
        Assert.That(new CoapOption(14, Hex("00000000")).AsUInt(), Is.Zero);
        Assert.That(() => new CoapOption(14, Hex("0100000000")).AsUInt(), Throws.TypeOf<FormatException>());
        Assert.That(new CoapOption(14, Hex("0100000000")).TryAsUInt(out _), Is.False);
    }

    [Test]
    public void A_string_option_is_utf8_and_options_are_equal_by_their_bytes()
    {
        var option = CoapOption.String(CoapOptionNumber.UriPath, "température");
        Assert.That(option.Value.ToArray(), Is.EqualTo(Encoding.UTF8.GetBytes("température")));
        Assert.That(option.AsString(), Is.EqualTo("température"));
        Assert.That(CoapOption.String(11, "").Value.IsEmpty, Is.True);
        var copy = new CoapOption(11, option.Value.ToArray());
        Assert.That(copy, Is.EqualTo(option));
        Assert.That(copy.GetHashCode(), Is.EqualTo(option.GetHashCode()));
        Assert.That(new CoapOption(15, option.Value), Is.Not.EqualTo(option));
    }

    [Test]
    public void Critical_options_have_odd_numbers_and_the_registered_ones_are_known()
    {
        Assert.That(new[] { 1, 3, 5, 7, 11, 15, 17, 23, 27, 35, 39 }.All(CoapOptionNumber.IsCritical), Is.True);
        Assert.That(new[] { 4, 6, 8, 12, 14, 20, 28, 60, 258 }.Any(CoapOptionNumber.IsCritical), Is.False);
        Assert.That(new[] { 1, 3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 17, 20, 23, 27, 28, 35, 39, 60, 258 }.All(CoapOptionNumber.IsKnown), Is.True);
        Assert.That(new[] { 0, 2, 9, 13, 16, 128, 65535 }.Any(CoapOptionNumber.IsKnown), Is.False);
    }

    // ---- Typed accessors -------------------------------------------------------------------------------------------

    [Test]
    public void The_accessors_read_the_hubs_options_and_are_null_when_absent()
    {
        var empty = Decoded(Hex("40 01 00 01"));
        Assert.That(new object?[] { empty.UriPath, empty.UriQuery, empty.ContentFormat, empty.Accept, empty.Block1, empty.Block2, empty.Observe, empty.Size1, empty.Size2, empty.MaxAge, empty.UriHost, empty.UriPort, empty.NoResponse }, Is.All.Null);

        var message = new CoapMessage { Code = CoapCode.Put, MessageId = 9, Token = Hex("AABB") };
        message.SetUriPath("devices/p-7/telemetry");
        message.SetStringOption(CoapOptionNumber.UriHost, "hub.local");
        message.SetUIntOption(CoapOptionNumber.UriPort, 5683);
        message.AddStringOption(CoapOptionNumber.UriQuery, "k=v");
        message.ContentFormat = CoapContentFormat.Cbor;
        message.Accept = CoapContentFormat.Json;
        message.Block1 = new CoapBlock(3, true, 6);
        message.Block2 = new CoapBlock(0, false, 2);
        message.Observe = 0;
        message.Size1 = 4000;
        message.Size2 = 70000;
        message.MaxAge = 0;
        message.SetUIntOption(CoapOptionNumber.NoResponse, 26);
        var decoded = Decoded(RoundTrip(message));
        Assert.Multiple(() =>
        {
            Assert.That(decoded.UriPath, Is.EqualTo(new[] { "devices", "p-7", "telemetry" }));
            Assert.That(decoded.UriQuery, Is.EqualTo(new[] { "k=v" }));
            Assert.That(decoded.UriHost, Is.EqualTo("hub.local"));
            Assert.That(decoded.UriPort, Is.EqualTo(5683));
            Assert.That(decoded.ContentFormat, Is.EqualTo(60));
            Assert.That(decoded.Accept, Is.EqualTo(50));
            Assert.That(decoded.Block1, Is.EqualTo(new CoapBlock(3, true, 6)));
            Assert.That(decoded.Block2, Is.EqualTo(new CoapBlock(0, false, 2)));
            Assert.That(decoded.Observe, Is.EqualTo(0u));
            Assert.That(decoded.Size1, Is.EqualTo(4000u));
            Assert.That(decoded.Size2, Is.EqualTo(70000u));
            Assert.That(decoded.MaxAge, Is.EqualTo(0u));
            Assert.That(decoded.NoResponse, Is.EqualTo(26u));
            Assert.That(decoded.FirstBadOption(), Is.Null);
            Assert.That(decoded.FirstUnrecognizedCriticalOption(), Is.Null);
        });
        message.ContentFormat = null;
        message.Block1 = null;
        Assert.That(message.HasOption(CoapOptionNumber.ContentFormat) || message.HasOption(CoapOptionNumber.Block1), Is.False);
        Assert.That(() => message.ContentFormat = 65536, Throws.TypeOf<ArgumentOutOfRangeException>());
        Assert.That(() => message.Observe = 1u << 24, Throws.TypeOf<ArgumentOutOfRangeException>());
    }

    [TestCase("", new string[0])]
    [TestCase("/", new string[0])]
    [TestCase("a", new[] { "a" })]
    [TestCase("/a/b", new[] { "a", "b" })]
    [TestCase("a//b/", new[] { "a", "", "b", "" })]
    public void A_path_is_split_into_one_uri_path_option_per_segment(string path, string[] segments)
    {
        var message = new CoapMessage();
        message.SetUriPath(path);
        Assert.That(message.UriPath ?? [], Is.EqualTo(segments));
    }

    [Test]
    public void An_unknown_critical_option_is_reported_and_an_unknown_elective_one_is_not()
    {
        var message = Decoded(Hex("40 01 00 01 21 00 71 00"));  // option 2 (elective) then 9 (critical), one byte each
        Assert.That(message.FirstUnrecognizedCriticalOption(), Is.EqualTo((ushort)9));
        Assert.That(message.FirstUnrecognizedCriticalOption(n => n == 9), Is.Null);
        var ifMatch = Decoded(Hex("40 01 00 01 11 AA"));
        Assert.That(ifMatch.FirstUnrecognizedCriticalOption(), Is.Null);
        Assert.That(ifMatch.FirstUnrecognizedCriticalOption(n => n != CoapOptionNumber.IfMatch), Is.EqualTo(CoapOptionNumber.IfMatch), "a server without If-Match");
    }

    // ---- Codes, blocks, factories ----------------------------------------------------------------------------------

    [TestCase(0, 0, "0.00")]
    [TestCase(0, 1, "0.01")]
    [TestCase(2, 4, "2.04")]
    [TestCase(2, 31, "2.31")]
    [TestCase(4, 15, "4.15")]
    [TestCase(5, 3, "5.03")]
    [TestCase(7, 31, "7.31")]
    public void A_code_is_class_dot_two_digit_detail(int cls, int detail, string text)
    {
        var code = CoapCode.Of(cls, detail);
        Assert.That(code.ToString(), Is.EqualTo(text));
        Assert.That((code.Class, code.Detail), Is.EqualTo((cls, detail)));
        Assert.That(code.Value, Is.EqualTo(cls << 5 | detail));
    }

    [Test]
    public void The_named_codes_are_the_registered_ones()
    {
        var named = new Dictionary<string, CoapCode>
        {
            ["0.00"] = CoapCode.Empty, ["0.01"] = CoapCode.Get, ["0.02"] = CoapCode.Post, ["0.03"] = CoapCode.Put, ["0.04"] = CoapCode.Delete,
            ["2.01"] = CoapCode.Created, ["2.02"] = CoapCode.Deleted, ["2.03"] = CoapCode.Valid, ["2.04"] = CoapCode.Changed, ["2.05"] = CoapCode.Content,
            ["2.31"] = CoapCode.Continue, ["4.00"] = CoapCode.BadRequest, ["4.01"] = CoapCode.Unauthorized, ["4.02"] = CoapCode.BadOption,
            ["4.03"] = CoapCode.Forbidden, ["4.04"] = CoapCode.NotFound, ["4.05"] = CoapCode.MethodNotAllowed, ["4.06"] = CoapCode.NotAcceptable,
            ["4.08"] = CoapCode.RequestEntityIncomplete, ["4.12"] = CoapCode.PreconditionFailed, ["4.13"] = CoapCode.RequestEntityTooLarge,
            ["4.15"] = CoapCode.UnsupportedContentFormat, ["4.29"] = CoapCode.TooManyRequests, ["5.00"] = CoapCode.InternalServerError,
            ["5.01"] = CoapCode.NotImplemented, ["5.02"] = CoapCode.BadGateway, ["5.03"] = CoapCode.ServiceUnavailable,
            ["5.04"] = CoapCode.GatewayTimeout, ["5.05"] = CoapCode.ProxyingNotSupported,
        };
        Assert.That(named.Select(p => p.Value.ToString()), Is.EqualTo(named.Keys));
        Assert.That(named.Values.Where(c => c.IsRequest), Is.EqualTo(new[] { CoapCode.Get, CoapCode.Post, CoapCode.Put, CoapCode.Delete }));
        Assert.That(named.Values.Count(c => c.IsResponse), Is.EqualTo(named.Count - 5));
        Assert.That(CoapCode.Empty.IsEmpty && !CoapCode.Empty.IsRequest && !CoapCode.Empty.IsResponse, Is.True);
        Assert.That(CoapCode.Of(1, 0).IsReservedClass && CoapCode.Of(6, 1).IsReservedClass && CoapCode.Of(7, 0).IsReservedClass, Is.True);
    }

    [TestCase(8, 0)]
    [TestCase(-1, 0)]
    [TestCase(0, 32)]
    [TestCase(2, -1)]
    public void A_code_outside_3_bits_dot_5_bits_is_refused(int cls, int detail) =>
        Assert.That(() => CoapCode.Of(cls, detail), Throws.TypeOf<ArgumentOutOfRangeException>());

    [TestCase(0x00u, 0u, false, 0, 16, 0)]
    [TestCase(0x0Eu, 0u, true, 6, 1024, 0)]
    [TestCase(0x1Au, 1u, true, 2, 64, 64)]
    [TestCase(0x36u, 3u, false, 6, 1024, 3072)]
    [TestCase(0xFFFFFEu, 0xFFFFFu, true, 6, 1024, 0x3FFFFC00)]
    public void A_block_value_is_num_more_and_szx(uint value, uint number, bool more, int szx, int size, int offset)
    {
        Assert.That(CoapBlock.TryParse(value, out var block), Is.True);
        Assert.That(block, Is.EqualTo(new CoapBlock(number, more, szx)));
        Assert.That((block.Size, block.Offset), Is.EqualTo((size, offset)));
        Assert.That(block.Encode(), Is.EqualTo(value));
        Assert.That(CoapBlock.SizeExponentOf(size), Is.EqualTo(szx));
    }

    [TestCase(0x07u)]
    [TestCase(0x0Fu)]
    [TestCase(0xFFFFFFu)]
    [TestCase(0x1000000u)]
    public void A_block_with_szx_7_or_more_than_3_bytes_does_not_parse(uint value) =>
        Assert.That(CoapBlock.TryParse(value, out _), Is.False);

    [Test]
    public void A_block_that_does_not_fit_its_fields_is_not_encoded()
    {
        Assert.That(() => new CoapBlock(CoapBlock.MaxNumber + 1, false, 0).Encode(), Throws.TypeOf<InvalidOperationException>());
        Assert.That(() => new CoapBlock(0, false, 7).Encode(), Throws.TypeOf<InvalidOperationException>());
        Assert.That(() => new CoapBlock(0, false, -1).Encode(), Throws.TypeOf<InvalidOperationException>());
        Assert.That(() => CoapBlock.SizeExponentOf(2048), Throws.TypeOf<ArgumentOutOfRangeException>());
        Assert.That(() => CoapBlock.SizeExponentOf(100), Throws.TypeOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void A_piggybacked_response_echoes_the_message_id_and_a_copy_of_the_token()
    {
        var datagram = Hex("42 01 12 34 AA BB B1 78");
        var request = Decoded(datagram);
        var ack = CoapMessage.Response(request, CoapType.Acknowledgement, CoapCode.Content);
        Assert.That((ack.Type, ack.Code, ack.MessageId), Is.EqualTo((CoapType.Acknowledgement, CoapCode.Content, (ushort)0x1234)));
        datagram[4] = 0;
        Assert.That(ack.Token.ToArray(), Is.EqualTo(Hex("AABB")), "the token outlives the receive buffer");
        Assert.That(ack.Options, Is.Empty);
        var separate = CoapMessage.Response(request, CoapType.Confirmable, CoapCode.Changed);
        Assert.That((separate.MessageId, separate.Token.Length), Is.EqualTo(((ushort)0, 2)));
        Assert.That(() => CoapMessage.Response(request, CoapType.Reset, CoapCode.Content), Throws.ArgumentException);
        Assert.That(() => CoapMessage.Response(request, CoapType.Acknowledgement, CoapCode.Empty), Throws.ArgumentException);
        Assert.That(() => CoapMessage.Response(request, CoapType.Acknowledgement, CoapCode.Get), Throws.ArgumentException);
        Assert.That(() => CoapMessage.Empty(CoapType.NonConfirmable, 1), Throws.ArgumentException);
    }

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(4)]
    [TestCase(8)]
    public void A_token_of_0_to_8_bytes_round_trips_in_the_tkl_nibble(int length)
    {
        var token = Enumerable.Range(1, length).Select(i => (byte)i).ToArray();
        var bytes = RoundTrip(new CoapMessage { Type = CoapType.NonConfirmable, Code = CoapCode.Get, MessageId = 5, Token = token });
        Assert.That(bytes[0], Is.EqualTo(0x50 | length));
    }

    [Test]
    public void Messages_that_cannot_be_encoded_are_refused_naming_the_problem()
    {
        Assert.That(() => new CoapMessage { Token = new byte[9] }, Throws.ArgumentException.With.Message.Contains("8"));
        var emptyWithToken = new CoapMessage { Code = CoapCode.Empty, Token = new byte[] { 1 } };
        Assert.That(() => CoapCodec.Encode(emptyWithToken), Throws.ArgumentException.With.Message.Contains("Empty"));
        var emptyWithPayload = new CoapMessage { Code = CoapCode.Empty, Payload = new byte[] { 1 } };
        Assert.That(() => CoapCodec.EncodedLength(emptyWithPayload), Throws.ArgumentException);
        var tooLong = new CoapMessage { Code = CoapCode.Post };
        tooLong.AddOption(2, new byte[CoapCodec.MaxOptionValueLength + 1]);
        Assert.That(() => CoapCodec.Encode(tooLong), Throws.ArgumentException.With.Message.Contains("65804"));
        var badType = new CoapMessage { Code = CoapCode.Get, Type = (CoapType)4 };
        Assert.That(() => CoapCodec.Encode(badType), Throws.ArgumentException);
    }

    [Test]
    public void Encoding_into_a_span_writes_the_exact_length_and_refuses_a_short_one_without_writing()
    {
        var message = new CoapMessage { Code = CoapCode.Get, MessageId = 1, Payload = Ascii("hello") };
        message.SetUriPath("a/b");
        var length = CoapCodec.EncodedLength(message);
        var buffer = new byte[length + 10];
        Assert.That(CoapCodec.Encode(message, buffer), Is.EqualTo(length));
        Assert.That(buffer[..length], Is.EqualTo(CoapCodec.Encode(message)));
        var small = new byte[length - 1];
        Assert.That(() => CoapCodec.Encode(message, small), Throws.ArgumentException);
        Assert.That(small, Is.All.Zero);
    }

    [Test]
    public void Encoding_sorted_options_into_a_span_allocates_nothing()
    {
        var message = new CoapMessage { Code = CoapCode.Post, MessageId = 1, Token = Hex("0102"), Payload = new byte[100] };
        message.SetUriPath("devices/p-7/telemetry");
        message.ContentFormat = CoapContentFormat.Cbor;
        var buffer = new byte[256];
        CoapCodec.Encode(message, buffer);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++) CoapCodec.Encode(message, buffer);
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
    }

    [Test]
    public void A_decoded_message_slices_the_datagram_instead_of_copying()
    {
        var datagram = Hex("41 02 00 01 AA B1 78 FF 01 02 03");
        var message = Decoded(datagram);
        Assert.That(MemoryMarshal.TryGetArray(message.Payload, out var payload) && payload.Array == datagram && payload.Offset == 8, Is.True);
        Assert.That(MemoryMarshal.TryGetArray(message.Token, out var token) && token.Array == datagram && token.Offset == 4, Is.True);
        Assert.That(MemoryMarshal.TryGetArray(message.Options[0].Value, out var value) && value.Array == datagram && value.Offset == 6, Is.True);
    }

    // ---- Malformed datagrams (RFC 7252 §3, §3.1, §4.1) ---------------------------------------------------------------

    [TestCase("")]
    [TestCase("40")]
    [TestCase("40 01")]
    [TestCase("40 01 00")]
    public void Under_4_bytes_is_too_short_and_has_no_header(string hex)
    {
        Assert.That(CoapCodec.TryDecode(Hex(hex), out var message, out var header), Is.EqualTo(CoapFormatError.TooShort));
        Assert.That((message, header), Is.EqualTo(((CoapMessage?)null, (CoapMessage?)null)));
    }

    [TestCase(0)]
    [TestCase(2)]
    [TestCase(3)]
    public void A_version_other_than_1_is_unknown_and_has_no_header(int version)
    {
        Assert.That(CoapCodec.TryDecode(new byte[] { (byte)(version << 6), 1, 0, 1 }, out var message, out var header), Is.EqualTo(CoapFormatError.UnknownVersion));
        Assert.That((message, header), Is.EqualTo(((CoapMessage?)null, (CoapMessage?)null)));
    }

    [TestCase(9)]
    [TestCase(10)]
    [TestCase(11)]
    [TestCase(12)]
    [TestCase(13)]
    [TestCase(14)]
    [TestCase(15)]
    public void A_token_length_of_9_to_15_is_reserved_and_the_header_still_allows_a_reset(int tkl)
    {
        var datagram = Concat(new byte[] { (byte)(0x40 | tkl), 1, 0xAB, 0xCD }, new byte[16]);
        Assert.That(CoapCodec.TryDecode(datagram, out var message, out var header), Is.EqualTo(CoapFormatError.TokenLengthReserved));
        Assert.That(message, Is.Null);
        Assert.That((header!.Type, header.Code, header.MessageId, header.Token.Length), Is.EqualTo((CoapType.Confirmable, CoapCode.Get, (ushort)0xABCD, 0)));
    }

    [TestCase("41 01 00 07")]
    [TestCase("48 01 00 07 01 02 03 04 05 06 07")]
    public void A_token_longer_than_the_rest_of_the_datagram_is_too_short_with_a_header(string hex)
    {
        Assert.That(CoapCodec.TryDecode(Hex(hex), out var message, out var header), Is.EqualTo(CoapFormatError.TooShort));
        Assert.That(message, Is.Null);
        Assert.That((header!.MessageId, header.Token.Length), Is.EqualTo(((ushort)7, 0)));
    }

    [TestCase("F0")]
    [TestCase("F1 00")]
    [TestCase("FE 00")]
    [TestCase("B1 61 F0")]
    public void A_delta_nibble_of_15_outside_the_payload_marker_is_reserved(string options) =>
        Assert.That(ErrorOf(Concat(Hex("40 01 00 01"), Hex(options))), Is.EqualTo(CoapFormatError.OptionDeltaReserved));

    [TestCase("0F")]
    [TestCase("BF 61")]
    [TestCase("DF 00")]
    [TestCase("EF 00 00")]
    public void A_length_nibble_of_15_is_reserved(string options) =>
        Assert.That(ErrorOf(Concat(Hex("40 01 00 01"), Hex(options))), Is.EqualTo(CoapFormatError.OptionLengthReserved));

    [TestCase("D0", "an extended delta byte missing")]
    [TestCase("E0 00", "an extended delta byte of two missing")]
    [TestCase("E0", "both extended delta bytes missing")]
    [TestCase("0D", "an extended length byte missing")]
    [TestCase("0E 00", "an extended length byte of two missing")]
    [TestCase("DD 00", "the extended length after an extended delta missing")]
    [TestCase("03 61 62", "a value one byte short")]
    [TestCase("0D 00 61", "a 13-byte value cut short")]
    [TestCase("B1 61 01", "a second option's value missing")]
    public void An_option_running_past_the_end_of_the_datagram_is_refused(string options, string shape) =>
        Assert.That(ErrorOf(Concat(Hex("40 01 00 01"), Hex(options))), Is.EqualTo(CoapFormatError.OptionPastEnd), shape);

    [TestCase("40 02 00 01 FF")]
    [TestCase("41 02 00 01 AA FF")]
    [TestCase("40 02 00 01 B1 61 FF")]
    public void A_payload_marker_without_a_payload_is_refused(string hex) =>
        Assert.That(ErrorOf(Hex(hex)), Is.EqualTo(CoapFormatError.EmptyPayloadAfterMarker));

    [TestCase("41 00 00 01 AA", "an Empty message with a token")]
    [TestCase("41 00 00 01", "an Empty message announcing a token")]
    [TestCase("60 00 00 01 FF 01", "an Empty ACK with a payload")]
    [TestCase("70 00 00 01 B1 61", "an Empty RST with an option")]
    [TestCase("40 00 00 01 00", "an Empty CON with one stray byte")]
    public void An_empty_message_has_nothing_after_the_message_id(string hex, string shape)
    {
        Assert.That(CoapCodec.TryDecode(Hex(hex), out var message, out var header), Is.EqualTo(CoapFormatError.EmptyMessageNotEmpty), shape);
        Assert.That(message, Is.Null);
        Assert.That(header!.MessageId, Is.EqualTo(1));
    }

    [TestCase("D1 0A 07", "Block2 with SZX 7")]
    [TestCase("D1 0E 0F", "Block1 with SZX 7")]
    [TestCase("D3 0A 00 00 17", "Block2 with SZX 7 in 3 bytes")]
    [TestCase("D4 0E 00 00 00 10", "Block1 of 4 bytes")]
    public void A_block_with_szx_7_or_over_3_bytes_is_a_bad_block(string options, string shape)
    {
        Assert.That(CoapCodec.TryDecode(Concat(Hex("42 02 00 09 AB CD"), Hex(options)), out var message, out var header), Is.EqualTo(CoapFormatError.BadBlock), shape);
        Assert.That(message, Is.Null);
        Assert.That((header!.MessageId, header.Token.ToArray()), Is.EqualTo(((ushort)9, Hex("ABCD"))), "the server can answer 4.00 with the token");
    }

    [Test]
    public void A_known_critical_option_of_a_bad_length_fails_with_the_header_so_the_server_can_answer_4_02()
    {
        var header = Hex("41 01 00 09 AB");
        Assert.Multiple(() =>
        {
            Assert.That(ErrorOf(Concat(header, Hex("30"))), Is.EqualTo(CoapFormatError.OptionValueTooLong), "an empty Uri-Host");
            Assert.That(ErrorOf(Concat(header, Hex("BD F3"), new byte[256])), Is.EqualTo(CoapFormatError.OptionValueTooLong), "a 256-byte Uri-Path");
            Assert.That(ErrorOf(Concat(header, Hex("BD F2"), new byte[255])), Is.EqualTo(CoapFormatError.None), "a 255-byte Uri-Path");
            Assert.That(ErrorOf(Concat(header, Hex("D3 04 01 02 03"))), Is.EqualTo(CoapFormatError.OptionValueTooLong), "a 3-byte Accept");
            Assert.That(ErrorOf(Concat(header, Hex("51 00"))), Is.EqualTo(CoapFormatError.OptionValueTooLong), "an If-None-Match with a value");
            Assert.That(ErrorOf(Concat(header, Hex("73 01 02 03"))), Is.EqualTo(CoapFormatError.OptionValueTooLong), "a 3-byte Uri-Port");
            Assert.That(ErrorOf(Concat(header, Hex("19 00 00 00 00 00 00 00 00 00"))), Is.EqualTo(CoapFormatError.OptionValueTooLong), "a 9-byte If-Match");
            Assert.That(ErrorOf(Concat(header, Hex("DE 16 02 FE"), new byte[1035])), Is.EqualTo(CoapFormatError.OptionValueTooLong), "a 1035-byte Proxy-Uri");
            Assert.That(ErrorOf(Concat(header, Hex("DE 16 02 FD"), new byte[1034])), Is.EqualTo(CoapFormatError.None), "a 1034-byte Proxy-Uri");
        });
        Assert.That(CoapCodec.TryDecode(Concat(header, Hex("30")), out _, out var kept), Is.EqualTo(CoapFormatError.OptionValueTooLong));
        Assert.That((kept!.Type, kept.Code, kept.MessageId, kept.Token.ToArray(), kept.Options.Count), Is.EqualTo((CoapType.Confirmable, CoapCode.Get, (ushort)9, Hex("AB"), 0)));
    }

    [Test]
    public void A_known_elective_option_of_a_bad_length_is_ignored_and_named_by_first_bad_option()
    {
        // Content-Format of 3 bytes (§5.4.3: treated like an unrecognized elective option, so ignored).
        var contentFormat = Decoded(Hex("40 02 00 01 C3 00 00 32"));
        Assert.That(contentFormat.ContentFormat, Is.Null);
        Assert.That(contentFormat.FirstBadOption(), Is.EqualTo(CoapOptionNumber.ContentFormat));
        var observe = Decoded(Hex("40 01 00 01 64 00 00 00 01"));
        Assert.That((observe.Observe, observe.FirstBadOption()), Is.EqualTo(((uint?)null, (ushort?)CoapOptionNumber.Observe)));
        var maxAge = Decoded(Hex("60 45 00 01 D5 01 01 02 03 04 05"));
        Assert.That((maxAge.MaxAge, maxAge.FirstBadOption()), Is.EqualTo(((uint?)null, (ushort?)CoapOptionNumber.MaxAge)));
        var emptyETag = Decoded(Hex("40 01 00 01 40"));
        Assert.That(emptyETag.FirstBadOption(), Is.EqualTo(CoapOptionNumber.ETag));
    }

    [Test]
    public void A_repeated_critical_option_that_is_not_repeatable_fails_and_a_repeated_elective_one_keeps_its_first()
    {
        Assert.That(ErrorOf(Hex("40 01 00 01 31 61 01 62")), Is.EqualTo(CoapFormatError.OptionRepeated), "Uri-Host twice");
        Assert.That(ErrorOf(Hex("40 01 00 01 D1 04 32 01 32")), Is.EqualTo(CoapFormatError.OptionRepeated), "Accept twice");
        Assert.That(ErrorOf(Hex("40 01 00 01 D1 0A 02 01 12")), Is.EqualTo(CoapFormatError.OptionRepeated), "Block2 twice");
        Assert.That(ErrorOf(Hex("40 01 00 01 11 01 01 02")), Is.EqualTo(CoapFormatError.None), "If-Match is repeatable");
        var twice = Decoded(Hex("40 02 00 01 C1 32 01 3C"));
        Assert.That(twice.ContentFormat, Is.EqualTo(CoapContentFormat.Json), "the second occurrence is ignored (§5.4.5)");
        Assert.That(twice.FirstBadOption(), Is.EqualTo(CoapOptionNumber.ContentFormat));
    }

    [Test]
    public void A_layout_error_wins_over_an_earlier_option_value_error()
    {
        // An empty Uri-Host (a 4.02 case) followed by a reserved delta nibble: the message is malformed (RST), not 4.02.
        Assert.That(ErrorOf(Hex("40 01 00 01 30 F0")), Is.EqualTo(CoapFormatError.OptionDeltaReserved));
        Assert.That(ErrorOf(Hex("40 01 00 01 30 FF")), Is.EqualTo(CoapFormatError.EmptyPayloadAfterMarker));
    }

    [Test]
    public void A_well_formed_message_carries_all_it_had_and_is_its_own_header()
    {
        Assert.That(CoapCodec.TryDecode(Hex("52 45 BE EF 01 02 C1 3C FF 68 69"), out var message, out var header), Is.EqualTo(CoapFormatError.None));
        Assert.That(header, Is.SameAs(message));
        Assert.That((message!.Type, message.Code, message.MessageId), Is.EqualTo((CoapType.NonConfirmable, CoapCode.Content, (ushort)0xBEEF)));
        Assert.That((message.Token.ToArray(), message.ContentFormat, Encoding.ASCII.GetString(message.Payload.Span)), Is.EqualTo((Hex("0102"), (int?)60, "hi")));
        Assert.That(message.ToString(), Is.EqualTo("NON 2.05 mid=48879 token=0102 2 B"));
    }

    // ---- Fuzzing ---------------------------------------------------------------------------------------------------

    /// <summary>Decoding must never throw; it succeeds exactly when it hands out a message, which then encodes back to
    /// the very same bytes (the format has one encoding per message), and gives a header whenever the first byte says
    /// version 1 and there are 4 bytes.</summary>
    private static void AssertDecodesSafely(byte[] datagram)
    {
        CoapFormatError error;
        CoapMessage? message, header;
        try
        {
            error = CoapCodec.TryDecode(datagram, out message, out header);
        }
        catch (Exception e)
        {
            Assert.Fail($"{Convert.ToHexString(datagram)} threw {e}");
            return;
        }
        Assert.That(Enum.IsDefined(error), Is.True);
        if (error == CoapFormatError.None)
        {
            Assert.That(message, Is.Not.Null);
            Assert.That(header, Is.SameAs(message));
            if (!CoapCodec.Encode(message!).AsSpan().SequenceEqual(datagram)) Assert.Fail($"{Convert.ToHexString(datagram)} re-encodes differently");
        }
        else
        {
            Assert.That(message, Is.Null);
            var headerExpected = datagram.Length >= 4 && datagram[0] >> 6 == 1;
            Assert.That(header is not null, Is.EqualTo(headerExpected), Convert.ToHexString(datagram));
        }
    }

    [Test]
    public void Ten_thousand_random_datagrams_never_throw_and_always_get_a_result()
    {
        var random = new Random(19);
        var outcomes = new Dictionary<CoapFormatError, int>();
        for (var i = 0; i < 10_000; i++)
        {
            var datagram = new byte[random.Next(0, 48)];
            random.NextBytes(datagram);
            // Most with version 1 and a token length 0..8, so the decoder gets past the header often.
            if (datagram.Length > 0 && random.Next(4) != 0) datagram[0] = (byte)(0x40 | random.Next(4) << 4 | random.Next(9));
            AssertDecodesSafely(datagram);
            var error = CoapCodec.TryDecode(datagram, out _, out _);
            outcomes[error] = outcomes.GetValueOrDefault(error) + 1;
        }
        Assert.That(outcomes.Keys, Has.Count.GreaterThanOrEqualTo(8), string.Join(", ", outcomes));
    }

    [Test]
    public void Ten_thousand_mutations_of_valid_messages_never_throw_and_always_get_a_result()
    {
        var random = new Random(7959);
        var valid = Enumerable.Range(0, 50).Select(_ => CoapCodec.Encode(RandomMessage(random))).ToArray();
        foreach (var datagram in valid) AssertDecodesSafely(datagram);
        var decodedFine = 0;
        for (var i = 0; i < 10_000; i++)
        {
            var datagram = Mutate(valid[random.Next(valid.Length)], random);
            AssertDecodesSafely(datagram);
            if (CoapCodec.TryDecode(datagram, out _, out _) == CoapFormatError.None) decodedFine++;
        }
        Assert.That(decodedFine, Is.InRange(500, 9_500), "mutations both keep and break messages");
    }

    private static CoapMessage RandomMessage(Random random)
    {
        var message = new CoapMessage
        {
            Type = (CoapType)random.Next(4),
            Code = new CoapCode((byte)random.Next(1, 256)),
            MessageId = (ushort)random.Next(65536),
            Token = RandomBytes(random, random.Next(9)),
        };
        var numbers = new ushort[] { 1, 3, 4, 6, 7, 11, 12, 14, 15, 17, 23, 27, 28, 60, 258, 2, 100, 1000, 65000 };
        for (var n = random.Next(8); n > 0; n--)
        {
            var number = numbers[random.Next(numbers.Length)];
            var length = number switch
            {
                CoapOptionNumber.UriHost => random.Next(1, 20),
                CoapOptionNumber.UriPort or CoapOptionNumber.Accept => random.Next(3),
                CoapOptionNumber.Block1 or CoapOptionNumber.Block2 => 1,
                CoapOptionNumber.IfMatch => random.Next(9),
                _ when CoapOptionNumber.IsKnown(number) => random.Next(3),
                _ => random.Next(0, random.Next(2) == 0 ? 20 : 300),
            };
            byte[] value = number is CoapOptionNumber.Block1 or CoapOptionNumber.Block2 ? [(byte)(random.Next(16) << 4 | random.Next(7))] : RandomBytes(random, length);
            if (!CoapOptionNumber.IsRepeatable(number)) message.SetOption(number, value);
            else message.AddOption(number, value);
        }
        if (random.Next(2) == 0) message.Payload = RandomBytes(random, random.Next(1, 100));
        return message;
    }

    private static byte[] RandomBytes(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }

    private static byte[] Mutate(byte[] datagram, Random random)
    {
        var bytes = datagram.ToList();
        for (var n = random.Next(1, 4); n > 0; n--)
        {
            switch (random.Next(5))
            {
                case 0 when bytes.Count > 0: bytes[random.Next(bytes.Count)] = (byte)random.Next(256); break;
                case 1 when bytes.Count > 0: bytes[random.Next(bytes.Count)] ^= (byte)(1 << random.Next(8)); break;
                case 2 when bytes.Count > 0: bytes.RemoveRange(random.Next(bytes.Count), 1); break;
                case 3: bytes.Insert(random.Next(bytes.Count + 1), (byte)random.Next(256)); break;
                case 4: bytes = bytes.Take(random.Next(bytes.Count + 1)).ToList(); break;
                default: break;
            }
        }
        return [.. bytes];
    }
}
