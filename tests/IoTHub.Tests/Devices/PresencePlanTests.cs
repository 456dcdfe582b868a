using IoTHub.Devices.Presence;

namespace IoTHub.Tests.Devices;

// How one batch of presence events becomes a handful of set-based statements; the end-to-end behaviour is in
// PresenceTests and ConnectStormTests, this pins the order rules that are hard to time from outside.
public sealed class PresencePlanTests
{
    private static PresenceEvent Connect(string device, string client, long at) => new(true, device, client, at, "mqtt5", "127.0.0.1", true, at, null);
    private static PresenceEvent Disconnect(string device, string client, long at, bool online = false) => new(false, device, client, at, null, null, online, at, "gone");

    [Test]
    public void A_disconnect_closes_the_newest_connection_of_its_batch_and_otherwise_one_opened_before_it_once_per_round()
    {
        var plan = PresencePlan.From([
            Connect("a", "c1", 1), Disconnect("a", "c1", 2),
            Disconnect("b", "c1", 3), Disconnect("b", "c1", 4),
            Connect("c", "c1", 5), Connect("c", "c1", 6), Disconnect("c", "c1", 7, online: true),
        ]);

        Assert.That(plan.NewConnections.Select(r => (r.DeviceId, r.ConnectedAt, r.DisconnectedAt)),
            Is.EqualTo(new[] { ("a", 1L, (long?)2L), ("c", 5L, null), ("c", 6L, 7L) }));
        Assert.That(plan.CloseRounds, Has.Count.EqualTo(2), "b's two closes of earlier rows go in two statements");
        Assert.That(plan.CloseRounds[0].Single().At, Is.EqualTo(3));
        Assert.That(plan.CloseRounds[1].Single().At, Is.EqualTo(4));
        Assert.That(plan.Devices["a"], Is.EqualTo((false, 2L)));
        Assert.That(plan.Devices["c"], Is.EqualTo((true, 7L)), "a device ends the batch as its last event left it");
    }
}
