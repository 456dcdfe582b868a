using Microsoft.Extensions.Options;

namespace IoTHub.Storage.Retention;

public sealed record RetentionPolicyView(string? Raw, string? OneMinute, string? OneHour, string? OneDay, string Interval);

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
