// The endpoints of rabbitmq_auth_backend_http (auth_http.http_method = post): RabbitMQ posts a form and reads "allow"
// or "deny" (or "allow" and tags, for the user question). Only the RabbitMQ nodes may ask (RabbitMq:AuthAllowedAddresses):
// the user question verifies a password, and the others trust the user name RabbitMQ authenticated.
using System.Net;
using Microsoft.Extensions.Options;

namespace IoTHub.Connectivity.RabbitMq;

internal static class RabbitMqAuthEndpoints
{
    /// <summary>The path prefix; deploy/rabbitmq/rabbitmq.conf points the four paths under it.</summary>
    public const string Prefix = "/rabbitmq/auth";

    /// <summary>Maps <c>POST /rabbitmq/auth/user</c>, <c>/vhost</c>, <c>/resource</c> and <c>/topic</c> (form fields as
    /// rabbitmq_auth_backend_http 3.10 sends them; answers <c>text/plain</c>).</summary>
    public static void Map(IEndpointRouteBuilder app)
    {
        // Not rate limited: every question of every device on a RabbitMQ node comes from that node's one address, and a
        // refusal (429) closes the device's connection; the allow-list keeps anyone else out.
        var group = app.MapGroup(Prefix).AllowAnonymous().DisableAntiforgery().DisableRateLimiting().ExcludeFromDescription()
            .AddEndpointFilter(async (context, next) =>
            {
                var allowed = context.HttpContext.RequestServices.GetRequiredService<IOptions<RabbitMqOptions>>().Value.AuthAllowedAddresses;
                var remote = context.HttpContext.Connection.RemoteIpAddress;
                if (remote is null || !allowed.Any(a => IPAddress.TryParse(a, out var ip) && (ip.Equals(remote) || ip.Equals(remote.IsIPv4MappedToIPv6 ? remote.MapToIPv4() : remote))))
                    return Results.Text("deny", statusCode: StatusCodes.Status403Forbidden);
                return await next(context);
            });
        group.MapPost("/user", async (HttpRequest request, RabbitMqAuthorization auth, CancellationToken ct) =>
        {
            var f = await request.ReadFormAsync(ct);
            var tags = await auth.UserAsync(f["username"].ToString(), f["password"].ToString(), NullIfEmpty(f["client_id"]), ct);
            return Answer(tags is null ? "deny" : "allow " + tags);
        });
        group.MapPost("/vhost", async (HttpRequest request, RabbitMqAuthorization auth, CancellationToken ct) =>
        {
            var f = await request.ReadFormAsync(ct);
            return Answer(auth.Vhost(f["vhost"].ToString()) ? "allow" : "deny");
        });
        group.MapPost("/resource", async (HttpRequest request, RabbitMqAuthorization auth, CancellationToken ct) =>
        {
            var f = await request.ReadFormAsync(ct);
            return Answer(auth.Resource(f["vhost"].ToString(), f["resource"].ToString(), f["name"].ToString(), f["permission"].ToString(),
                NullIfEmpty(f["client_id"])) ? "allow" : "deny");
        });
        group.MapPost("/topic", async (HttpRequest request, RabbitMqAuthorization auth, CancellationToken ct) =>
        {
            var f = await request.ReadFormAsync(ct);
            return Answer(auth.Topic(f["username"].ToString(), f["vhost"].ToString(), f["name"].ToString(), f["permission"].ToString(),
                f["routing_key"].ToString(), f["tags"].ToString()) ? "allow" : "deny");
        });
    }

    private static IResult Answer(string text) => Results.Text(text, "text/plain");

    private static string? NullIfEmpty(Microsoft.Extensions.Primitives.StringValues v) => v.Count == 0 || string.IsNullOrEmpty(v[0]) ? null : v[0];
}
