// `IoTHub --health-check [url]`: asks a running hub whether it is ready (GET /health/ready) and exits 0 if it is, 1 if
// not. The container image's HEALTHCHECK runs it: the aspnet image has neither curl nor wget, and the hub's own binary
// is already there. The url is the hub's address (http://host:8080, or a base path behind a proxy); the probe asks its
// /health/ready (a url that names /health/ready or /health/live itself is asked as it is). Without a url it asks the
// first HTTP address the hub listens on (--urls / ASPNETCORE_URLS, default :8080), on this machine. Redirects are not
// followed: only the health endpoint's own 200 is ready, never the sign-in page a redirect leads to.
namespace IoTHub;

/// <summary>The health-probe mode of the hub's binary.</summary>
internal static class HealthProbe
{
    public const string Argument = "--health-check";

    public static bool IsRequested(string[] args) => args.Length > 0 && args[0] == Argument;

    /// <summary>Asks the hub named by <paramref name="args"/> (<c>--health-check [url] [settings]</c>) and returns the exit
    /// code: 0 when <c>/health/ready</c> answers 200, 1 when it answers anything else, cannot be reached within 5 s or
    /// the url is not an http(s) address (one line on stderr).</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        Uri target;
        if (args.Length > 1 && !args[1].StartsWith("--", StringComparison.Ordinal))
        {
            if (ProbeTarget(args[1]) is not { } given)
            {
                Console.Error.WriteLine($"{Argument}: '{args[1]}' is not an http:// or https:// address of a hub (e.g. http://localhost:8080).");
                return 1;
            }
            target = given;
        }
        else
        {
            target = new Uri(LocalAddress(StartupFailure.ReadSettings(args[1..])), ReadyPath);
        }
        using var http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false }) { Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            using var response = await http.GetAsync(target);
            var body = await response.Content.ReadAsStringAsync();
            var shown = body.Length > 200 ? body[..200] + " …" : body;
            Console.WriteLine($"{target}: {(int)response.StatusCode} {shown.ReplaceLineEndings(" ")}");
            return response.StatusCode == System.Net.HttpStatusCode.OK ? 0 : 1;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            Console.Error.WriteLine($"{target}: {ex.Message}");
            return 1;
        }
    }

    private const string ReadyPath = "/health/ready";

    /// <summary>The address to ask for a url given on the command line: the hub's address (any path is a base path, as
    /// behind a reverse proxy) with <c>/health/ready</c> appended, or the url itself when it already names
    /// <c>/health/ready</c> or <c>/health/live</c>; null when it is not an absolute http(s) url.</summary>
    internal static Uri? ProbeTarget(string url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)) return null;
        var path = uri.AbsolutePath.TrimEnd('/');
        if (path.EndsWith(ReadyPath, StringComparison.Ordinal) || path.EndsWith("/health/live", StringComparison.Ordinal)) return uri;
        return new UriBuilder(uri) { Path = path + ReadyPath, Query = "" }.Uri;
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
