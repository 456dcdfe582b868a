// `IoTHub --health-check [url]`: asks a running hub whether it is ready (GET /health/ready) and exits 0 if it is, 1 if
// not. The container image's HEALTHCHECK runs it: the aspnet image has neither curl nor wget, and the hub's own binary
// is already there. Without a url it asks the first HTTP address the hub listens on (--urls / ASPNETCORE_URLS,
// default :8080), on this machine.
namespace IoTHub;

/// <summary>The health-probe mode of the hub's binary.</summary>
internal static class HealthProbe
{
    public const string Argument = "--health-check";

    public static bool IsRequested(string[] args) => args.Length > 0 && args[0] == Argument;

    public static async Task<int> RunAsync(string[] args)
    {
        var target = args.Length > 1 && !args[1].StartsWith("--", StringComparison.Ordinal)
            ? new Uri(args[1])
            : new Uri(LocalAddress(StartupFailure.ReadSettings(args[1..])), "/health/ready");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            using var response = await http.GetAsync(target);
            var body = await response.Content.ReadAsStringAsync();
            Console.WriteLine($"{target}: {(int)response.StatusCode} {body}");
            return response.IsSuccessStatusCode ? 0 : 1;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            Console.Error.WriteLine($"{target}: {ex.Message}");
            return 1;
        }
    }

    /// <summary>The first address in "urls", with a wildcard host replaced by localhost.</summary>
    internal static Uri LocalAddress(IConfiguration settings)
    {
        var first = (settings["urls"] is { Length: > 0 } u ? u : StartupFailure.DefaultUrls)
            .Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[0];
        var address = BindingAddress.Parse(first);
        var host = address.Host is "*" or "+" or "0.0.0.0" or "[::]" or "::" ? "localhost" : address.Host;
        return new Uri($"{address.Scheme}://{host}:{address.Port}/");
    }
}
