using System.Runtime.CompilerServices;
using IoTHub.Connectivity.Mqtt;
using IoTHub.Connectivity.Mqtt.Sessions;
using IoTHub.Contracts;

namespace IoTHub.Tests.Connectivity.Mqtt;

/// <summary>The PUBACKs a connection holds until their telemetry commits (MqttConnection.TryTakeAck, used by the send loop).</summary>
public sealed class PendingAckSpecs
{
    private static MqttConnection Connection() => new()
    {
        Principal = MqttPrincipal.Device("d1"), ClientId = "d1", IsV5 = true, CleanStart = true, SessionExpirySeconds = 0,
    };

    [Test]
    public void A_puback_takes_its_own_pending_ack_in_arrival_order_and_nothing_for_another_packet()
    {
        var c = Connection();
        IngestTicket first = new(), second = new();
        c.PendingAcks.Enqueue(new PendingAck(7, first));
        c.PendingAcks.Enqueue(new PendingAck(8, second));

        Assert.That(c.TryTakeAck(99, out _), Is.False, "a PUBACK of a message that is not held telemetry");
        Assert.That(c.TryTakeAck(7, out var a), Is.True);
        Assert.That(a.Ticket, Is.SameAs(first));
        Assert.That(c.TryTakeAck(7, out _), Is.False, "taken once");
        Assert.That(c.TryTakeAck(8, out var b), Is.True);
        Assert.That(b.Ticket, Is.SameAs(second));
        Assert.That(c.TryTakeAck(8, out _), Is.False);
    }

    // The send loop once peeked the queue before dequeuing: a ConcurrentQueue segment that was peeked keeps the items
    // dequeued from it, so up to 32 committed tickets stayed reachable per connection (35,000 at 10,000 connections).
    [Test]
    public void Tickets_whose_pubacks_went_out_are_no_longer_held_by_the_connection()
    {
        var c = Connection();
        var released = ReleaseTen(c);

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();

        Assert.That(released.Count(w => w.TryGetTarget(out _)), Is.Zero);
        GC.KeepAlive(c);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static List<WeakReference<IngestTicket>> ReleaseTen(MqttConnection c)
    {
        var released = new List<WeakReference<IngestTicket>>();
        for (ushort id = 1; id <= 10; id++)
        {
            var ticket = new IngestTicket();
            released.Add(new WeakReference<IngestTicket>(ticket));
            c.PendingAcks.Enqueue(new PendingAck(id, ticket));
            c.TryTakeAck(99, out _); // a PUBACK of something else looks at the head first
            if (!c.TryTakeAck(id, out _)) throw new InvalidOperationException($"packet {id} was not taken");
        }
        return released;
    }

    [Test]
    public void The_queue_keeps_arrival_order_while_it_grows_and_after_it_wrapped()
    {
        var q = new PendingAckQueue();
        ushort next = 0, expected = 0;
        // Enqueue in bursts larger than every ring so far, drain part of each: rings fill, wrap and are followed by larger ones.
        for (var round = 1; round <= 12; round++)
        {
            for (var i = 0; i < round * 7; i++) q.Enqueue(new PendingAck(next++, null!));
            for (var i = 0; i < round * 5; i++)
            {
                Assert.That(q.TryDequeue(out var a), Is.True);
                Assert.That(a.PacketId, Is.EqualTo(expected++));
            }
        }
        while (q.TryDequeue(out var a)) Assert.That(a.PacketId, Is.EqualTo(expected++));
        Assert.That(expected, Is.EqualTo(next), "every ack came out once");
    }

    [Test]
    public void One_producer_and_one_consumer_at_once_see_every_ack_once_in_order()
    {
        const int count = 2_000_000;
        var q = new PendingAckQueue();
        var producer = new Thread(() =>
        {
            for (var i = 0; i < count; i++)
            {
                q.Enqueue(new PendingAck(unchecked((ushort)i), null!));
                if (i % 1000 == 0) Thread.Yield(); // lets the consumer catch up now and then, so rings also drain empty
            }
        });
        var seen = 0;
        var outOfOrder = 0;
        var consumer = new Thread(() =>
        {
            while (seen < count)
            {
                if (!q.TryDequeue(out var a)) continue;
                if (a.PacketId != unchecked((ushort)seen)) outOfOrder++;
                seen++;
            }
        });
        producer.Start();
        consumer.Start();
        Assert.That(producer.Join(TimeSpan.FromMinutes(1)) && consumer.Join(TimeSpan.FromMinutes(1)), Is.True, "both threads ended");

        Assert.That((seen, outOfOrder, q.TryDequeue(out _)), Is.EqualTo((count, 0, false)));
    }
}
