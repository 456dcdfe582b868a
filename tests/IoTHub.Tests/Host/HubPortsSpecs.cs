// Hub processes started by tests side by side must never meet on a default port: CoAP over DTLS bound 5684 in both
// crash fixtures (SQLite and PostgreSQL) when they ran at the same time, and the second hub never started.
using System.Reflection;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Host;

public sealed class HubPortsSpecs
{
    /// <summary>Every <c>int …Port</c> setting of every options section of the hub (<c>Mqtt:Port</c>, <c>Coap:DtlsPort</c>,
    /// …), found by reflection so that a listener added later is covered without editing this spec.</summary>
    private static IEnumerable<string> PortSettings() =>
        typeof(IoTHub.HubApp).Assembly.GetTypes()
            .Select(t => (Type: t, Section: t.GetField("SectionName", BindingFlags.Public | BindingFlags.Static)?.GetRawConstantValue() as string))
            .Where(x => x.Section is not null)
            .SelectMany(x => x.Type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
                .Where(p => p.PropertyType == typeof(int) && p.Name.EndsWith("Port", StringComparison.Ordinal) && p.CanWrite)
                .Select(p => $"{x.Section}:{p.Name}"))
            .Distinct()
            .Order();

    [Test]
    public void Every_listener_setting_of_the_hub_gets_a_port_of_its_own()
    {
        var settings = PortSettings().ToList();
        Assert.That(settings, Is.SupersetOf(new[] { "Mqtt:Port", "Mqtt:TlsPort", "Tls:HttpsPort", "Coap:Port", "Coap:DtlsPort" }),
            "the reflection finds the hub's listeners");
        var arguments = HubPorts.Free().Arguments;
        Assert.Multiple(() =>
        {
            foreach (var setting in settings)
                Assert.That(arguments.Any(a => a.StartsWith($"--{setting}=", StringComparison.Ordinal)), Is.True, $"{setting} is set by HubPorts");
            Assert.That(arguments, Does.Contain("--urls"), "HTTP is set by HubPorts");
        });
    }

    [Test]
    public void The_ports_of_one_hub_are_all_different()
    {
        var ports = HubPorts.Free();
        Assert.That(new[] { ports.Http, ports.Mqtt, ports.MqttTls, ports.Https }, Is.Unique, "TCP");
        Assert.That(new[] { ports.Coap, ports.CoapDtls }, Is.Unique, "UDP");
    }
}
