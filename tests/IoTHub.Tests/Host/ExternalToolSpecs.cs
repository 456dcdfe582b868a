// What the specs read of a real client's output: libcoap's log lines start with the time of day, whose digits read like
// a CoAP response code.
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Host;

public sealed class ExternalToolSpecs
{
    [Test]
    public void Libcoap_log_times_are_taken_out_so_their_digits_are_not_read_as_a_response_code()
    {
        const string output = """
            Dec 02 20:07:02.039 WARN *  127.0.0.1:56286 <-> 127.0.0.1:21195 DTLS: SSL3 alert read:fatal:unknown PSK identity
            Dec 02 20:07:02.040 ERR  cannot send CoAP pdu
            4.03 Forbidden
            """;

        var cleaned = ExternalTool.WithoutLogTimes(output);

        Assert.That(cleaned, Does.Not.Contain("2.04").And.Not.Contain("20:07"));
        Assert.That(cleaned, Does.Contain("WARN *  127.0.0.1:56286 <-> 127.0.0.1:21195 DTLS: SSL3 alert").And.Contain("ERR  cannot send CoAP pdu"));
        Assert.That(cleaned, Does.Contain("4.03 Forbidden"), "a response line is kept whole");
    }
}
