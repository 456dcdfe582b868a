// One attempt: the Standard Webhooks request (body {"type","timestamp","data"}, headers webhook-id, webhook-timestamp,
// webhook-signature), sent with the "webhooks" HttpClient (SSRF-guarded connections, a timeout from
// Microsoft.Extensions.Http.Resilience, no redirects, no in-memory retries: the schedule is in the delivery row), and
// what the answer means for the schedule.
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using IoTHub.Contracts;
using IoTHub.Webhooks.Network;
using IoTHub.Webhooks.Signing;
using Polly.Timeout;

namespace IoTHub.Webhooks.Dispatch;

/// <summary>What an attempt means for its delivery.</summary>
internal enum AttemptOutcome
{
    /// <summary>2xx: delivered.</summary>
    Succeeded,
    /// <summary>Network error, timeout, 408, 429, 5xx, 3xx: try again later.</summary>
    Retry,
    /// <summary>Any other 4xx, or a refused address: trying again would not help.</summary>
    Failed,
    /// <summary>410 Gone: the receiver asks never to be called again; the endpoint is disabled.</summary>
    Gone,
}

/// <summary>The result of one attempt, as the delivery log records it.</summary>
internal sealed record AttemptResult(AttemptOutcome Outcome, int? Status, int DurationMs, string? Error, TimeSpan? RetryAfter);

/// <summary>Sends one attempt of one message to one endpoint.</summary>
internal sealed class WebhookSender(IHttpClientFactory clients, TimeProvider time)
{
    public const string ClientName = "webhooks";

    /// <summary>The body: <c>{"type", "timestamp" (ISO 8601 UTC), "data"}</c>; the same bytes on every attempt.</summary>
    public static byte[] Body(OutboxMessage m)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("type", m.Type);
            json.WriteString("timestamp", DateTimeOffset.FromUnixTimeMilliseconds(m.OccurredAt).UtcDateTime.ToString("yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fff'Z'", System.Globalization.CultureInfo.InvariantCulture));
            json.WritePropertyName("data");
            json.WriteRawValue(m.Data, skipInputValidation: true);
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }

    public async Task<AttemptResult> SendAsync(string url, OutboxMessage message, IReadOnlyList<string> secrets, CancellationToken ct)
    {
        var body = Body(message);
        var timestamp = time.GetUtcNow().ToUnixTimeSeconds(); // the time of this attempt: receivers check it for freshness
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        request.Headers.TryAddWithoutValidation("webhook-id", message.MessageId);
        request.Headers.TryAddWithoutValidation("webhook-timestamp", timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
        request.Headers.TryAddWithoutValidation("webhook-signature", WebhookSignature.Sign(message.MessageId, timestamp, body, secrets));
        request.Headers.UserAgent.Add(new ProductInfoHeaderValue("IoTHub-Webhooks", "1"));

        var started = Stopwatch.GetTimestamp();
        int Elapsed() => (int)Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        try
        {
            using var response = await clients.CreateClient(ClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
            var status = (int)response.StatusCode;
            var duration = Elapsed();
            return status switch
            {
                >= 200 and < 300 => new AttemptResult(AttemptOutcome.Succeeded, status, duration, null, null),
                410 => new AttemptResult(AttemptOutcome.Gone, status, duration, "410 Gone: the receiver asked not to be called again", null),
                408 or 429 or >= 500 => new AttemptResult(AttemptOutcome.Retry, status, duration, $"{status} {response.ReasonPhrase}", RetryAfter(response)),
                >= 300 and < 400 => new AttemptResult(AttemptOutcome.Retry, status, duration, $"{status}: redirects are not followed", null),
                _ => new AttemptResult(AttemptOutcome.Failed, status, duration, $"{status} {response.ReasonPhrase}", null),
            };
        }
        catch (HttpRequestException ex) when (Refusal(ex) is { } refused)
        {
            return new AttemptResult(AttemptOutcome.Failed, null, Elapsed(), Cut(refused.Message), null);
        }
        catch (HttpRequestException ex)
        {
            return new AttemptResult(AttemptOutcome.Retry, null, Elapsed(), Cut(Describe(ex)), null);
        }
        catch (TimeoutRejectedException)
        {
            return new AttemptResult(AttemptOutcome.Retry, null, Elapsed(), "timed out", null);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return new AttemptResult(AttemptOutcome.Retry, null, Elapsed(), "timed out", null);
        }
    }

    private TimeSpan? RetryAfter(HttpResponseMessage response) => response.Headers.RetryAfter switch
    {
        { Delta: { } delta } => delta,
        { Date: { } date } => date - time.GetUtcNow() is var d && d > TimeSpan.Zero ? d : TimeSpan.Zero,
        _ => null,
    };

    private static WebhookTargetRefusedException? Refusal(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
            if (ex is WebhookTargetRefusedException r) return r;
        return null;
    }

    private static string Describe(Exception ex)
    {
        var text = new StringBuilder(ex.Message);
        for (var inner = ex.InnerException; inner is not null; inner = inner.InnerException) text.Append(": ").Append(inner.Message);
        return text.ToString();
    }

    internal static string Cut(string s) => s.Length <= 500 ? s : s[..497] + "...";
}
