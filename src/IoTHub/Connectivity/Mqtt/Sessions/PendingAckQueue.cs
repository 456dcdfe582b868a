// The PUBACKs a connection holds until their telemetry commits, in arrival order. One producer (the connection's receive
// loop) and one consumer (its send loop), so no lock: a ring that starts at 4 slots and, when full, is followed by one
// twice its size (the old one is read to its end first, then left to the GC). A ConcurrentQueue did this job before;
// its first segment alone is 32 slots (~1 KB a connection, 10 MB at 10,000 connections), for the one to ten acks a
// device has in flight.
namespace IoTHub.Connectivity.Mqtt.Sessions;

/// <summary>Single-producer, single-consumer FIFO of <see cref="PendingAck"/>s: <see cref="Enqueue"/> from one thread at
/// a time, <see cref="TryDequeue"/> from one thread at a time (the two may run at once). A dequeued slot is cleared, so a
/// taken ticket is not kept reachable.</summary>
internal sealed class PendingAckQueue
{
    private const int FirstCapacity = 4;

    private sealed class Ring(int capacity)
    {
        public readonly PendingAck[] Slots = new PendingAck[capacity];
        public readonly int Mask = capacity - 1;
        public int Head; // next slot to read: written by the consumer only
        public int Tail; // next slot to write: written by the producer only
        public Ring? Next; // set once by the producer, when this ring was full
    }

    private Ring _write; // the producer's
    private Ring _read; // the consumer's

    public PendingAckQueue() => _write = _read = new Ring(FirstCapacity);

    /// <summary>Producer only.</summary>
    public void Enqueue(PendingAck ack)
    {
        var ring = _write;
        var tail = ring.Tail;
        if (tail - Volatile.Read(ref ring.Head) < ring.Slots.Length)
        {
            ring.Slots[tail & ring.Mask] = ack;
            Volatile.Write(ref ring.Tail, tail + 1); // publishes the slot
            return;
        }
        var next = new Ring(ring.Slots.Length * 2);
        next.Slots[0] = ack;
        next.Tail = 1;
        Volatile.Write(ref ring.Next, next); // publishes the ring, with its slot, after every slot of the full one
        _write = next;
    }

    /// <summary>Consumer only: the oldest ack, if any.</summary>
    public bool TryDequeue(out PendingAck ack)
    {
        while (true)
        {
            var ring = _read;
            var head = ring.Head;
            if (head == Volatile.Read(ref ring.Tail))
            {
                // Empty, unless the producer moved on to a next ring. Its last writes to this one came before it linked
                // the next, so once the link is seen, a second look at this ring's tail is final.
                if (Volatile.Read(ref ring.Next) is not { } next)
                {
                    ack = default;
                    return false;
                }
                if (head != Volatile.Read(ref ring.Tail)) continue;
                _read = next;
                continue;
            }
            ack = ring.Slots[head & ring.Mask];
            ring.Slots[head & ring.Mask] = default;
            Volatile.Write(ref ring.Head, head + 1); // frees the slot for the producer
            return true;
        }
    }
}
