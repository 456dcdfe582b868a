// What the DTLS server lets reach BouncyCastle's cookie check from an address without a session: only an epoch-0
// handshake record carrying a ClientHello. Everything else is dropped unanswered.
using IoTHub.Connectivity.Coap;

namespace IoTHub.Tests.Connectivity.Coap;

public sealed class DtlsSpecs
{
    [Test]
    public void A_ClientHello_record_is_recognised()
    {
        var hello = CoapDtlsTests.ClientHello();
        Assert.That(DtlsServer.IsClientHello(hello, hello.Length), Is.True);
    }

    [TestCase(0, (byte)23, "application data, not handshake")]
    [TestCase(4, (byte)1, "epoch 1")]
    [TestCase(13, (byte)3, "a HelloVerifyRequest, not a ClientHello")]
    public void Other_records_are_not(int offset, byte value, string what)
    {
        var hello = CoapDtlsTests.ClientHello();
        hello[offset] = value;
        Assert.That(DtlsServer.IsClientHello(hello, hello.Length), Is.False, what);
    }

    [Test]
    public void A_datagram_shorter_than_record_and_handshake_headers_is_not()
    {
        var hello = CoapDtlsTests.ClientHello();
        for (var n = 0; n < 25; n++) Assert.That(DtlsServer.IsClientHello(hello, n), Is.False, $"{n} bytes");
    }
}
