// Fixtures run side by side: most of a test's time is spent waiting on sockets, the database and the hub's own
// pipeline, not on the CPU, so four fixtures at once finish the suite in about half the time on two cores. Tests
// inside a fixture still run one after the other (they share the fixture's devices and browser). A fixture that
// measures time or memory, restarts something shared, or needs the machine to itself says so with [RunsAlone], and
// NUnit runs it while no other fixture runs.

[assembly: Parallelizable(ParallelScope.Fixtures)]
[assembly: LevelOfParallelism(4)]

namespace IoTHub.Tests.Infrastructure
{
    /// <summary>The fixture runs while no other fixture runs, for the reason given: it times something to a fraction
    /// of a second, measures the whole process, or restarts something other fixtures use (PostgreSQL, RabbitMQ).</summary>
    [AttributeUsage(AttributeTargets.Class, Inherited = false)]
    public sealed class RunsAloneAttribute(string reason) : ParallelizableAttribute(ParallelScope.None)
    {
        public string Reason { get; } = reason;
    }
}
