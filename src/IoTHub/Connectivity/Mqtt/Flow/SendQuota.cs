// MQTT 5 flow control toward a client (§4.9): the hub never has more QoS 1/2 PUBLISHes unacknowledged toward a client
// than its Receive Maximum [MQTT-3.3.4-9], and keeps processing and answering every other packet meanwhile
// [MQTT-4.9.0-3]. MQTTnet has one send loop per connection and no flow control: a PUBLISH that finds the quota used up
// is held back here (the send loop goes on with PINGRESPs, acks, SUBACKs) and sent, in order, as the client's
// acknowledgements free the quota. A held-back message is still in MQTTnet's unacknowledged list, so a reconnect
// redelivers it like any other; it is marked sent (DUP on a later redelivery) only once it really was.
using IoTHub.Connectivity.Mqtt.Sessions;
using MQTTnet.Packets;

namespace IoTHub.Connectivity.Mqtt.Flow;

internal static class SendQuota
{
    /// <summary>In the send loop, for a QoS 1/2 PUBLISH: true to send it now, false when it is held back.</summary>
    public static bool TryTake(MqttConnection c, MqttPublishPacket publish)
    {
        if (c.SendQuota < 0) return true; // 3.1.1: no Receive Maximum
        lock (c.Flow)
        {
            if (ReferenceEquals(c.Releasing, publish))
            {
                c.Releasing = null; // a held-back message on its way out: its unit was taken when it was released
                return true;
            }
            if (c.Deferred.Count > 0 || c.Draining || c.SendQuota == 0)
            {
                c.Deferred.Enqueue(publish);
                return false;
            }
            c.SendQuota--;
            return true;
        }
    }

    /// <summary>A released message was discarded after all (expired, too large): its unit comes back.</summary>
    public static void Discarded(MqttConnection c, MqttPublishPacket publish)
    {
        if (c.SendQuota < 0) return;
        lock (c.Flow)
        {
            if (!ReferenceEquals(c.Releasing, publish)) return;
            c.Releasing = null;
            c.SendQuota++;
        }
    }

    /// <summary>The client acknowledged an outbound QoS 1/2 message (PUBACK, PUBCOMP, or PUBREC with an error): its unit
    /// comes back, and held-back messages go out while there is quota.</summary>
    public static void Acknowledged(MqttConnection c, ushort packetId, ILogger log)
    {
        if (!c.OutboundInFlight.TryRemove(packetId, out _) || c.SendQuota < 0) return;
        lock (c.Flow)
        {
            c.SendQuota++;
            if (c.Deferred.Count == 0 || c.Draining) return;
            c.Draining = true;
        }
        _ = DrainAsync(c, log);
    }

    private static async Task DrainAsync(MqttConnection c, ILogger log)
    {
        while (true)
        {
            MqttPublishPacket next;
            lock (c.Flow)
            {
                if (c.SendQuota <= 0 || c.Deferred.Count == 0 || c.IsEnded || c.Client is null)
                {
                    c.Draining = false;
                    return;
                }
                next = c.Deferred.Dequeue();
                c.SendQuota--;
                c.Releasing = next;
            }
            try
            {
                // Through MQTTnet's client, so the outbound interceptor sees it and the channel's write lock orders it
                // with the send loop's own packets.
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                await c.Client.SendPacketAsync(next, timeout.Token);
            }
            catch (Exception ex)
            {
                lock (c.Flow) c.Draining = false;
                log.LogDebug(ex, "Client {ClientId} went away while held-back messages were sent", c.ClientId);
                return;
            }
        }
    }
}
