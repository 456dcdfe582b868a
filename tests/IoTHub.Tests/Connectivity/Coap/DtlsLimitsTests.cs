// The DTLS server's bounds, on a host of their own (one session at most, a 5-second idle timeout), driven by
// BouncyCastle's DTLS client: the session limit refuses a second client, an idle session is closed, freeing its slot;
// a rotated token closes the device's session; a device without a stored key (created before DTLS support) is refused
// until its token is rotated.
using System.Net;
using System.Net.Sockets;
using IoTHub.Connectivity.Coap;
using IoTHub.Tests.Infrastructure;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Org.BouncyCastle.Tls;
using Org.BouncyCastle.Tls.Crypto.Impl.BC;

namespace IoTHub.Tests.Connectivity.Coap;

[TestFixture(Store.Sqlite)]
[RunsAlone("times DTLS handshakes to 2-3 s and an idle timeout to 5 s (a handshake timed out once beside other fixtures in CI)")]
public sealed class DtlsLimitsTests(Store store) : HubFixture(store)
{
    protected override IDictionary<string, string?>? Settings => new Dictionary<string, string?>
    {
        ["Coap:MaxDtlsSessions"] = "1",
        // Longer than the refused client's 3-second handshake: else the slot frees while it still retransmits.
        ["Coap:IdleTimeout"] = "00:00:05",
        ["Coap:DtlsHandshakeTimeout"] = "00:00:02",
    };

    private sealed class Client(string identity, string key) : PskTlsClient(new BcTlsCrypto(), new BasicTlsPskIdentity(identity, System.Text.Encoding.UTF8.GetBytes(key)))
    {
        protected override ProtocolVersion[] GetSupportedVersions() => ProtocolVersion.DTLSv12.Only();

        public override int GetHandshakeTimeoutMillis() => 3000;
    }

    /// <summary>A UDP socket connected to the hub's DTLS port, as BouncyCastle's client transport.</summary>
    private sealed class Udp : DatagramTransport, IDisposable
    {
        private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);

        public Udp(int port) => _socket.Connect(new IPEndPoint(IPAddress.Loopback, port));

        public int GetReceiveLimit() => 16_384;

        public int GetSendLimit() => 1_400;

        public int Receive(byte[] buf, int off, int len, int waitMillis) => Receive(buf.AsSpan(off, len), waitMillis);

        public int Receive(Span<byte> buffer, int waitMillis)
        {
            _socket.ReceiveTimeout = waitMillis;
            try
            {
                return _socket.Receive(buffer);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock or SocketError.ConnectionReset)
            {
                return -1;
            }
        }

        public void Send(byte[] buf, int off, int len) => _socket.Send(buf.AsSpan(off, len));

        public void Send(ReadOnlySpan<byte> buffer) => _socket.Send(buffer);

        public void Close() => _socket.Dispose();

        public void Dispose() => _socket.Dispose();
    }

    private Task<DtlsTransport> ConnectAsync(string id, string token) =>
        Task.Run(() => new DtlsClientProtocol().Connect(new Client(id, token), new Udp(Hub.CoapDtlsPort)));

    [Test]
    public async Task A_second_session_past_the_limit_is_refused_and_an_idle_session_is_closed_freeing_its_slot()
    {
        var dtls = Hub.Services.GetRequiredService<DtlsServer>();
        var (a, tokenA) = await Hub.CreateDeviceAsync();
        var (b, tokenB) = await Hub.CreateDeviceAsync();
        var first = await ConnectAsync(a, tokenA);
        Assert.That(dtls.Sessions, Is.EqualTo(1));
        Assert.That(async () => await ConnectAsync(b, tokenB), Throws.InstanceOf<IOException>(), "Coap:MaxDtlsSessions is 1");
        // The first session says nothing for longer than Coap:IdleTimeout (5 s): the hub closes it with close_notify.
        await WaitFor.ConditionAsync(() => Task.FromResult(dtls.Sessions == 0), "the idle session is closed", TimeSpan.FromSeconds(15));
        var buffer = new byte[first.GetReceiveLimit()];
        Assert.That(() => first.Receive(buffer, 0, buffer.Length, 1000), Throws.InstanceOf<IOException>().Or.EqualTo(-1));
        var second = await ConnectAsync(b, tokenB);
        Assert.That(dtls.Sessions, Is.EqualTo(1));
        second.Close();
    }

    private async Task NoSessionsAsync() =>
        await WaitFor.ConditionAsync(() => Task.FromResult(Hub.Services.GetRequiredService<DtlsServer>().Sessions == 0), "no DTLS session is left", TimeSpan.FromSeconds(15));

    private async Task<string> RotateAsync(string id)
    {
        using var admin = await Hub.AdminAsync();
        var rotated = await admin.PostAsync($"/api/v1/devices/{id}/rotate-token", null);
        rotated.EnsureSuccessStatusCode();
        return (await rotated.Content.ReadFromJsonAsync<JsonObject>())!["token"]!.GetValue<string>();
    }

    [Test]
    public async Task Rotating_the_token_closes_the_devices_open_session()
    {
        await NoSessionsAsync();
        var (id, token) = await Hub.CreateDeviceAsync();
        var session = await ConnectAsync(id, token);
        Assert.That(Hub.Services.GetRequiredService<DtlsServer>().Sessions, Is.EqualTo(1));
        await RotateAsync(id);
        await WaitFor.ConditionAsync(() => Task.FromResult(Hub.Services.GetRequiredService<DtlsServer>().Sessions == 0), "the session is closed", TimeSpan.FromSeconds(5));
        session.Close();
    }

    private async Task<Exception> HandshakeFailureAsync(string id, string key)
    {
        await NoSessionsAsync();
        try
        {
            (await ConnectAsync(id, key)).Close();
        }
        catch (Exception e)
        {
            return e;
        }
        Assert.Fail($"the handshake as {id} succeeded");
        return null!;
    }

    [Test]
    public async Task An_unknown_identity_fails_the_handshake_as_a_wrong_key_does_so_device_ids_cannot_be_probed()
    {
        // It was told unknown_psk_identity at once, where a known device with a wrong key gets no answer to its Finished
        // (RFC 4279 §2 lets a server hide which identities exist).
        var (id, _) = await Hub.CreateDeviceAsync();
        var wrongKey = await HandshakeFailureAsync(id, "not-the-token");
        var unknown = await HandshakeFailureAsync("no-such-device-" + Guid.NewGuid().ToString("N")[..8], "not-the-token");
        Assert.That(Outcome(unknown), Is.Not.EqualTo($"alert {AlertDescription.unknown_psk_identity}"));
        Assert.That(Outcome(unknown), Is.EqualTo(Outcome(wrongKey)), "the client cannot tell an unknown device from a wrong key");
    }

    /// <summary>How a failed handshake ended, as the client sees it: the alert it received, or the exception's type.</summary>
    private static string Outcome(Exception e) => e is TlsFatalAlertReceived r ? $"alert {r.AlertDescription}" : e.GetType().Name;

    [Test]
    public async Task A_device_without_a_stored_key_is_refused_until_its_token_is_rotated()
    {
        await NoSessionsAsync();
        var (id, token) = await Hub.CreateDeviceAsync();
        // As a device created before DTLS support: no encrypted token.
        await using (var scope = Hub.Services.CreateAsyncScope())
            await scope.ServiceProvider.GetRequiredService<IoTHub.Storage.HubDb>().Set<IoTHub.Devices.Device>().Where(d => d.Id == id)
                .ExecuteUpdateAsync(u => u.SetProperty(d => d.DtlsPsk, (string?)null));
        Assert.That(async () => await ConnectAsync(id, token), Throws.InstanceOf<IOException>());
        await NoSessionsAsync();
        var rotated = await RotateAsync(id);
        var session = await ConnectAsync(id, rotated);
        session.Close();
    }
}
