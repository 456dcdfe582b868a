using System.Net;
using IoTHub.Webhooks.Network;

namespace IoTHub.Tests.Webhooks;

/// <summary>Which addresses a webhook may reach when private networks are not allowed.</summary>
public sealed class AddressClassifierSpecs
{
    [TestCase("127.0.0.1")]
    [TestCase("127.255.0.9")]
    [TestCase("10.1.2.3")]
    [TestCase("172.16.0.1")]
    [TestCase("172.31.255.255")]
    [TestCase("192.168.1.1")]
    [TestCase("169.254.169.254")]
    [TestCase("100.64.0.1")]
    [TestCase("100.127.255.254")]
    [TestCase("0.0.0.0")]
    [TestCase("224.0.0.1")]
    [TestCase("255.255.255.255")]
    [TestCase("::1")]
    [TestCase("::")]
    [TestCase("fe80::1")]
    [TestCase("fc00::1")]
    [TestCase("fd12:3456::1")]
    [TestCase("ff02::1")]
    [TestCase("::ffff:127.0.0.1")]
    [TestCase("::ffff:10.0.0.1")]
    [TestCase("::ffff:169.254.169.254")]
    [TestCase("64:ff9b::a00:1")]
    [TestCase("2002:a00:1::1")]
    public void Non_public_addresses_are_recognised(string address) =>
        Assert.That(AddressClassifier.IsNonPublic(IPAddress.Parse(address), out var kind), Is.True, kind);

    [TestCase("8.8.8.8")]
    [TestCase("1.1.1.1")]
    [TestCase("172.32.0.1")]
    [TestCase("100.128.0.1")]
    [TestCase("192.169.0.1")]
    [TestCase("2606:4700:4700::1111")]
    [TestCase("::ffff:8.8.8.8")]
    public void Public_addresses_pass(string address) =>
        Assert.That(AddressClassifier.IsNonPublic(IPAddress.Parse(address), out _), Is.False);

    [TestCase("http://127.0.0.1:8080/hook")]
    [TestCase("http://10.0.0.5/hook")]
    [TestCase("https://169.254.169.254/latest/meta-data")]
    [TestCase("http://[::1]:9000/")]
    [TestCase("http://[::ffff:192.168.0.1]/")]
    [TestCase("http://localhost:9000/")]
    [TestCase("http://LOCALHOST./")]
    [TestCase("http://api.localhost/")]
    [TestCase("http://0.0.0.0/")]
    public void Urls_naming_private_places_are_refused_as_written(string url) =>
        Assert.Multiple(() =>
        {
            Assert.That(WebhookTarget.CheckUrl(url, allowPrivateNetworks: false), Is.Not.Null);
            Assert.That(WebhookTarget.CheckUrl(url, allowPrivateNetworks: true), Is.Null);
        });

    [TestCase("/relative")]
    [TestCase("ftp://example.com/x")]
    [TestCase("file:///etc/passwd")]
    [TestCase("https://user:pass@example.com/")]
    [TestCase("not a url")]
    public void Urls_that_are_not_absolute_http_are_refused(string url) =>
        Assert.That(WebhookTarget.CheckUrl(url, allowPrivateNetworks: true), Is.Not.Null);

    [Test]
    public void A_public_https_url_is_accepted() =>
        Assert.That(WebhookTarget.CheckUrl("https://hooks.example.com/iothub?x=1", allowPrivateNetworks: false), Is.Null);
}
