// Fast specifications of CoAP resource discovery's link-format and its RFC 6690 §4.1 query filter. No host, no sockets.
using System.Text;
using IoTHub.Connectivity.Coap;

namespace IoTHub.Tests.Connectivity.Coap;

public sealed class CoapDiscoverySpecs
{
    private static string Discover(string deviceId, params string[] query) =>
        Encoding.UTF8.GetString(CoapDiscovery.Format(CoapDiscovery.Filter(CoapDiscovery.LinksOf(deviceId), CoapDiscovery.FiltersOf(query, "token"))));

    [Test]
    public void A_device_s_links_are_its_six_resources_in_link_format()
    {
        Assert.That(Discover("dev-1"), Is.EqualTo(
            "</devices/dev-1/telemetry>;rt=\"iothub.telemetry\";ct=\"50 60\"," +
            "</devices/dev-1/state/desired>;rt=\"iothub.state.desired\";ct=50;obs," +
            "</devices/dev-1/state/reported>;rt=\"iothub.state.reported\";ct=50," +
            "</devices/dev-1/commands>;rt=\"iothub.commands\";ct=50;obs," +
            "</devices/dev-1/firmware/pending>;rt=\"iothub.firmware.pending\";ct=50;obs," +
            "</devices/dev-1/firmware/progress>;rt=\"iothub.firmware.progress\";ct=50"));
    }

    [Test]
    public void The_token_a_device_authenticates_with_is_not_a_filter() =>
        Assert.That(Discover("d", "token=secret").Split(','), Has.Length.EqualTo(6));

    [TestCase("rt=iothub.commands", "</devices/d/commands>")]
    [TestCase("rt=iothub.firmware*", "</devices/d/firmware/pending>,</devices/d/firmware/progress>")]
    [TestCase("href=/devices/d/telemetry", "</devices/d/telemetry>")]
    [TestCase("href=devices/d/state*", "</devices/d/state/desired>,</devices/d/state/reported>")]
    [TestCase("ct=60", "</devices/d/telemetry>")]
    [TestCase("obs", "</devices/d/state/desired>,</devices/d/commands>,</devices/d/firmware/pending>")]
    public void A_filter_keeps_the_links_that_match_it(string filter, string paths) =>
        Assert.That(string.Join(',', Discover("d", filter).Split(',').Select(l => l[..(l.IndexOf('>') + 1)])), Is.EqualTo(paths));

    [Test]
    public void Several_filters_must_all_match() =>
        Assert.That(Discover("d", "ct=50", "obs", "rt=iothub.state*"), Does.StartWith("</devices/d/state/desired>").And.Not.Contain(","));

    [TestCase("rt=iothub.command")]
    [TestCase("rt=telemetry")]
    [TestCase("title=anything")]
    [TestCase("href=/devices/other/*")]
    [TestCase("obs=1")]
    public void A_filter_nothing_matches_leaves_no_links(string filter) => Assert.That(Discover("d", filter), Is.Empty);
}
