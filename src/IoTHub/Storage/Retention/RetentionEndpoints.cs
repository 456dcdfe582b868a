using Microsoft.Extensions.Options;

namespace IoTHub.Storage.Retention;

/// <summary>The retention policy in force (section <c>Retention</c>), each period as <c>d.hh:mm:ss</c>, null meaning forever.</summary>
/// <param name="Raw">How long raw points are kept.</param>
/// <param name="OneMinute">How long 1-minute windows are kept.</param>
/// <param name="OneHour">How long 1-hour windows are kept.</param>
/// <param name="OneDay">How long 1-day windows are kept.</param>
/// <param name="Interval">How often the retention job runs.</param>
public sealed record RetentionPolicyView(string? Raw, string? OneMinute, string? OneHour, string? OneDay, string Interval);

/// <summary>The answer of <c>GET /api/v1/retention</c> and <c>POST /api/v1/retention/run</c> (admin; runs the job first):
/// the policy and what the job removed since the hub started.</summary>
/// <param name="Policy">The policy in force.</param>
/// <param name="LastRun">The latest run, or null before the first.</param>
/// <param name="TotalRawRowsRemoved">Raw rows deleted since start (SQLite).</param>
/// <param name="TotalRawPartitionsDropped">Raw partitions dropped since start (PostgreSQL).</param>
/// <param name="TotalRollupRowsRemoved">Window rows of all three resolutions deleted since start.</param>
public sealed record RetentionStatus(RetentionPolicyView Policy, RetentionReport? LastRun, long TotalRawRowsRemoved, long TotalRawPartitionsDropped, long TotalRollupRowsRemoved);

internal static class RetentionEndpoints
{
    public static void Map(RouteGroupBuilder api)
    {
        api.MapGet("/retention", (RetentionJob job, IOptions<RetentionOptions> o) => TypedResults.Ok(Status(job, o.Value)))
            .WithName("GetRetention").WithSummary("The retention policy per resolution and what the job has removed").WithTags("Retention");
        api.MapPost("/retention/run", async (RetentionJob job, IOptions<RetentionOptions> o, CancellationToken ct) =>
            {
                await job.RunOnceAsync(ct);
                return TypedResults.Ok(Status(job, o.Value));
            })
            .RequireAuthorization("admin")
            .WithName("RunRetention").WithSummary("Apply the retention policy now").WithTags("Retention");
    }

    private static RetentionStatus Status(RetentionJob job, RetentionOptions o) => new(
        new RetentionPolicyView(Format(o.Raw), Format(o.OneMinute), Format(o.OneHour), Format(o.OneDay), o.Interval.ToString("c")),
        job.LastRun, job.TotalRawRows, job.TotalRawPartitions, job.TotalRollupRows);

    private static string? Format(TimeSpan? t) => t?.ToString("c");
}
