namespace IoTHub.Contracts;

/// <summary>Whether this hub node runs the periodic jobs that must run on one node at a time when several share a
/// database (Broker:Mode RabbitMq): firmware campaign passes, retention, alarm deadlines (no data) and the purge of
/// cleared alarms. One node holds a PostgreSQL session-level advisory lock (pg_try_advisory_lock) and runs them; when
/// its session ends (the node stopped or died), the lock is free and another node takes it within
/// <see cref="RetryInterval"/>. A single node (Broker:Mode Embedded) always runs them.</summary>
public interface IJobLeadership
{
    /// <summary>True while this node runs the one-at-a-time jobs.</summary>
    bool IsLeader { get; }

    /// <summary>How often a node that does not hold the lock tries to take it.</summary>
    static TimeSpan RetryInterval => TimeSpan.FromSeconds(2);
}
