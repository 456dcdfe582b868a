// What stops the hub at start, said as one sentence a user can act on: which port is taken and the setting that moves
// it, what the database answered and where to fix it, which directory cannot be written, which setting is invalid.
// The exceptions behind these are walls of stack traces (a port in use was 188 lines, with the MQTT port printed as
// "http://[::]:1883"); the hub prints the sentence on stderr and exits with code 1 instead. An exception not recognised
// here is a bug, and is printed whole.
using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using IoTHub.Contracts;
using Microsoft.AspNetCore.Connections;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using Npgsql;

namespace IoTHub;

/// <summary>Explains a start-up failure in one sentence (see <see cref="Explain"/>), and checks before start that the
/// data directory can be written.</summary>
internal static partial class StartupFailure
{
    private const string Prefix = "IoTHub cannot start: ";

    /// <summary>After a failed start: stops what did start (the host calls StopAsync in reverse order, within 15 s), then
    /// disposes the host, which writes out what the loggers still hold. A failure of the stop is logged by the host; the
    /// process is ending, so it is not thrown again.</summary>
    public static async Task StopStartedServicesAsync(WebApplication app)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            await app.StopAsync(timeout.Token);
        }
        catch (Exception)
        {
            // logged by the host ("Hosting failed to stop")
        }
        await app.DisposeAsync();
    }

    /// <summary>The HTTP address without --urls / ASPNETCORE_URLS (as Connectivity's listeners use it).</summary>
    internal const string DefaultUrls = "http://0.0.0.0:8080";

    /// <summary>The settings as the hub reads them (appsettings.json next to the binary, environment variables, then the
    /// command line), for naming ports, paths and keys in a message; read without the host, which may be what failed.</summary>
    public static IConfiguration ReadSettings(string[] args)
    {
        IConfigurationBuilder Sources(bool json)
        {
            var b = new ConfigurationBuilder();
            if (json) b.AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true);
            return b.AddEnvironmentVariables().AddEnvironmentVariables("ASPNETCORE_").AddEnvironmentVariables("IOTHUB_").AddCommandLine(args);
        }

        try
        {
            return Sources(json: true).Build();
        }
        catch (Exception ex) when (ex is InvalidDataException or FormatException or IOException)
        {
            return Sources(json: false).Build(); // the host reports the broken file itself
        }
    }

    /// <summary>The data directory (<c>DataDirectory</c>, default <c>./data</c>) as an absolute path.</summary>
    public static string DataDirectory(IConfiguration settings) =>
        Path.GetFullPath(settings["DataDirectory"] is { Length: > 0 } dir ? dir : "data");

    /// <summary>Creates the data directory (0700) if needed and writes a file in it; one sentence naming the path if it
    /// cannot, else null. Every store needs it: SQLite keeps its database there, both keep the UI's signing keys.</summary>
    public static string? CheckDataDirectory(IConfiguration settings)
    {
        var dir = DataDirectory(settings);
        try
        {
            OwnerOnly.CreateDirectory(dir);
            var probe = Path.Combine(dir, $".write-test-{Environment.ProcessId}");
            using (new FileStream(probe, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose))
            {
            }
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return DataDirectoryMessage(dir, ex);
        }
    }

    /// <summary>One sentence for a start-up failure IoTHub recognises, else null.</summary>
    /// <param name="exception">What the host threw while it was built or started.</param>
    /// <param name="settings">The settings from <see cref="ReadSettings"/>.</param>
    public static string? Explain(Exception exception, IConfiguration settings)
    {
        var chain = Chain(exception).ToList();
        return Options(chain, settings)
            ?? chain.Select(ex => (ex is Contracts.StartupProblem ? Prefix + ex.Message : null) ?? Port(ex, chain, settings) ?? Postgres(ex, settings) ?? Sqlite(ex, settings)
                ?? Tls(ex, settings) ?? Binding(ex) ?? DataDirectoryFailure(ex, settings) ?? ConfigurationFile(ex)).FirstOrDefault(m => m is not null);
    }

    private static IEnumerable<Exception> Chain(Exception root)
    {
        var pending = new Stack<Exception>([root]);
        while (pending.TryPop(out var ex))
        {
            yield return ex;
            if (ex is AggregateException agg)
                foreach (var inner in agg.InnerExceptions.Reverse()) pending.Push(inner);
            else if (ex.InnerException is { } inner)
                pending.Push(inner);
        }
    }

    // ---- ports ----

    /// <summary>A listener the hub opens: what it serves, its port, the setting that moves it, and how to set it
    /// (<c>{0}</c> is the port to suggest).</summary>
    private sealed record Listener(string What, int Port, string Setting, string ExampleFormat);

    /// <summary>How to move <paramref name="listener"/> to a port that is free now and none of the hub's other TCP
    /// listeners use.</summary>
    private static string Example(Listener listener, List<Listener> all) =>
        string.Format(CultureInfo.InvariantCulture, listener.ExampleFormat,
            PortSuggestion.After(listener.Port, PortSuggestion.Transport.Tcp, all.Select(l => l.Port)));

    private static List<Listener> Listeners(IConfiguration s)
    {
        var list = new List<Listener>();
        foreach (var url in Urls(s).Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            try
            {
                var address = BindingAddress.Parse(url);
                list.Add(new Listener(address.Scheme == "https" ? "HTTPS" : "HTTP", address.Port, "--urls (or ASPNETCORE_URLS)",
                    $"--urls {address.Scheme}://{address.Host}:{{0}}"));
            }
            catch (FormatException)
            {
                // the host reports a malformed URL itself
            }
        }
        AddPort("MQTT", "Mqtt:Port", 1883);
        if (!string.IsNullOrEmpty(s["Tls:CertificatePath"]))
        {
            AddPort("MQTT over TLS", "Mqtt:TlsPort", 8883);
            AddPort("HTTPS", "Tls:HttpsPort", 8443);
        }
        return list;

        void AddPort(string what, string key, int fallback)
        {
            var port = int.TryParse(s[key], out var p) ? p : fallback;
            if (port > 0) list.Add(new Listener(what, port, key, $"--{key}={{0}} or IOTHUB_{key.Replace(":", "__", StringComparison.Ordinal)}={{0}}"));
        }
    }

    [GeneratedRegex(@"Failed to bind to address (?<address>\S+?):? address already in use", RegexOptions.IgnoreCase)]
    private static partial Regex BindFailure();

    private static string? Port(Exception ex, List<Exception> chain, IConfiguration settings)
    {
        var listeners = Listeners(settings);
        if (ex is IOException && BindFailure().Match(ex.Message) is { Success: true } m)
        {
            var address = m.Groups["address"].Value;
            var port = BindingAddress.Parse(address).Port;
            var on = listeners.Where(l => l.Port == port).ToList();
            return on.Count switch
            {
                0 => $"{Prefix}{address} is already in use by another program.",
                1 => $"{Prefix}port {port} ({on[0].What}) is already in use by another program; stop that program or give IoTHub's {on[0].What} another port with {on[0].Setting} (e.g. {Example(on[0], listeners)}).",
                _ => $"{Prefix}port {port} is set for {string.Join(" and ", on.Select(l => $"{l.What} ({l.Setting})"))}; give each its own port.",
            };
        }
        if (ex is AddressInUseException && !chain.Any(e => e is IOException && BindFailure().IsMatch(e.Message)))
            return $"{Prefix}a port IoTHub listens on is already in use ({Describe(listeners)}).";
        if (ex is SocketException { SocketErrorCode: SocketError.AccessDenied } && chain.Any(IsBind))
        {
            var low = listeners.Where(l => l.Port < 1024).ToList();
            return low.Count == 1
                ? $"{Prefix}port {low[0].Port} ({low[0].What}) needs root or the CAP_NET_BIND_SERVICE capability, as every port below 1024 does; give it a port above 1023 with {low[0].Setting} (e.g. {Example(low[0], listeners)})."
                : $"{Prefix}the system did not allow IoTHub to listen on one of its ports ({Describe(listeners)}); ports below 1024 need root or CAP_NET_BIND_SERVICE.";
        }
        if (ex is SocketException { SocketErrorCode: SocketError.AddressNotAvailable } && chain.Any(IsBind))
        {
            var local = NetworkInterface.GetAllNetworkInterfaces().SelectMany(n => n.GetIPProperties().UnicastAddresses).Select(a => a.Address).ToHashSet();
            if (IPAddress.TryParse(settings["Mqtt:Host"], out var mqttHost) && !mqttHost.Equals(IPAddress.Any) && !mqttHost.Equals(IPAddress.IPv6Any) && !local.Contains(mqttHost))
                return $"{Prefix}Mqtt:Host is {mqttHost}, which is not an address of this machine; set it to one of its addresses, or leave it empty to listen on all.";
            return $"{Prefix}an address in --urls (or ASPNETCORE_URLS) is not an address of this machine ('{Urls(settings)}'); use one of its addresses, or 0.0.0.0 to listen on all.";
        }
        if (ex is FormatException && ex.StackTrace?.Contains("Listeners", StringComparison.Ordinal) == true)
            return $"{Prefix}--urls (or ASPNETCORE_URLS) is '{Urls(settings)}', which is not a list of addresses such as http://0.0.0.0:8080;http://[::1]:8081 (a host is an IP address, localhost or 0.0.0.0; {ex.Message.TrimEnd('.')}).";
        return null;
    }

    private static string Urls(IConfiguration settings) => settings["urls"] is { Length: > 0 } u ? u : DefaultUrls;

    private static bool IsBind(Exception ex) => ex.StackTrace?.Contains("Bind", StringComparison.Ordinal) == true;

    private static string Describe(List<Listener> listeners) => string.Join(", ", listeners.Select(l => $"{l.What} {l.Port}: {l.Setting}"));

    // ---- PostgreSQL ----

    private static string? Postgres(Exception ex, IConfiguration settings)
    {
        if (ex is not NpgsqlException and not ArgumentException) return null;
        if (!string.Equals(settings["Storage:Provider"], "Postgres", StringComparison.OrdinalIgnoreCase)) return null;
        NpgsqlConnectionStringBuilder cs;
        try
        {
            cs = new NpgsqlConnectionStringBuilder(settings["ConnectionStrings:Postgres"]);
        }
        catch (ArgumentException bad)
        {
            return $"{Prefix}ConnectionStrings:Postgres is not a valid connection string ({bad.Message.TrimEnd('.')}); it looks like Host=localhost;Database=iothub;Username=iothub;Password=....";
        }
        if (ex is ArgumentException) return null;
        var server = $"{cs.Host ?? "localhost"}:{cs.Port}";
        var user = cs.Username ?? Environment.UserName;
        var db = cs.Database ?? user;
        const string Where = "ConnectionStrings:Postgres (IOTHUB_ConnectionStrings__Postgres)";
        if (ex is PostgresException pg)
        {
            return pg.SqlState switch
            {
                PostgresErrorCodes.InvalidPassword or PostgresErrorCodes.InvalidAuthorizationSpecification =>
                    $"{Prefix}PostgreSQL at {server} refused user '{user}' ({pg.MessageText}); check Username and Password in {Where}.",
                PostgresErrorCodes.InsufficientPrivilege when pg.MessageText.Contains("create database", StringComparison.OrdinalIgnoreCase) =>
                    $"{Prefix}database '{db}' does not exist on {server} and user '{user}' may not create it; create it (CREATE DATABASE {db} OWNER {user};) or let the user create it (ALTER ROLE {user} CREATEDB;).",
                PostgresErrorCodes.InsufficientPrivilege =>
                    $"{Prefix}user '{user}' may not create IoTHub's tables in database '{db}' on {server} ({pg.MessageText}); make the user the database's owner (ALTER DATABASE {db} OWNER TO {user};).",
                PostgresErrorCodes.InvalidCatalogName =>
                    $"{Prefix}database '{db}' does not exist on {server}; create it (CREATE DATABASE {db} OWNER {user};) or let user '{user}' create it (ALTER ROLE {user} CREATEDB;).",
                _ => $"{Prefix}PostgreSQL at {server} answered {pg.SqlState}: {pg.MessageText.TrimEnd('.')} (database '{db}', user '{user}').",
            };
        }
        var cause = Chain(ex).Skip(1).FirstOrDefault(e => e is SocketException or TimeoutException or IOException)?.Message ?? ex.Message;
        return $"{Prefix}cannot reach PostgreSQL at {server} ({cause.TrimEnd('.')}); start the server or fix Host and Port in {Where}.";
    }

    // ---- SQLite and the data directory ----

    private static string? Sqlite(Exception ex, IConfiguration settings)
    {
        if (ex is not SqliteException sq) return null;
        var file = Path.Combine(DataDirectory(settings), "iothub.db");
        var reason = sq.Message.Replace("SQLite Error " + sq.SqliteErrorCode + ": ", "", StringComparison.Ordinal).Trim('\'', ' ', '.');
        return sq.SqliteErrorCode switch
        {
            8 => $"{Prefix}the SQLite database {file} is read-only ({reason}); give IoTHub's user write access to it and to its folder, or set DataDirectory (IOTHUB_DataDirectory) to a writable folder.",
            14 => $"{Prefix}cannot open the SQLite database {file} ({reason}); check that IoTHub's user may write to {Path.GetDirectoryName(file)}, or set DataDirectory (IOTHUB_DataDirectory) to a writable folder.",
            11 or 26 => $"{Prefix}{file} is not a usable SQLite database ({reason}); move it away to start with a new one, or restore it from a backup.",
            _ => $"{Prefix}the SQLite database {file} failed ({reason}).",
        };
    }

    private static string? DataDirectoryFailure(Exception ex, IConfiguration settings)
    {
        if (ex is not (IOException or UnauthorizedAccessException)) return null;
        var dir = DataDirectory(settings);
        return ex.Message.Contains(dir, StringComparison.Ordinal) ? DataDirectoryMessage(dir, ex) : null;
    }

    private static string DataDirectoryMessage(string dir, Exception ex)
    {
        var reason = ex switch
        {
            UnauthorizedAccessException => "permission denied",
            DirectoryNotFoundException => "a part of the path is missing or is a file",
            // "Read-only file system : '/path'": the reason without the path, named in the sentence anyway
            _ => ex.Message.Split(" : '", 2)[0].TrimEnd('.'),
        };
        return $"{Prefix}the data directory {dir} cannot be written ({reason}); give IoTHub's user ({Environment.UserName}) write access to it, or set DataDirectory (IOTHUB_DataDirectory or --DataDirectory=) to a writable folder.";
    }

    // ---- TLS ----

    private static string? Tls(Exception ex, IConfiguration settings)
    {
        var cert = settings["Tls:CertificatePath"];
        if (string.IsNullOrEmpty(cert)) return null;
        var key = settings["Tls:KeyPath"];
        return ex switch
        {
            FileNotFoundException or DirectoryNotFoundException when Names(ex, key) => $"{Prefix}the TLS key file {key} (Tls:KeyPath) does not exist.",
            FileNotFoundException or DirectoryNotFoundException when Names(ex, cert) => $"{Prefix}the TLS certificate file {cert} (Tls:CertificatePath) does not exist.",
            CryptographicException or ArgumentException when ex.StackTrace?.Contains("LoadCertificate", StringComparison.Ordinal) == true || ex is CryptographicException =>
                $"{Prefix}cannot load the TLS certificate {cert}{(string.IsNullOrEmpty(key) ? "" : $" with the key {key}")} ({ex.Message.TrimEnd('.')}); check Tls:CertificatePath, Tls:KeyPath and Tls:Password.",
            _ => null,
        };
    }

    private static bool Names(Exception ex, string? path) =>
        !string.IsNullOrEmpty(path) && (ex is FileNotFoundException { FileName: { } f } && Path.GetFullPath(f) == Path.GetFullPath(path)
            || ex.Message.Contains($"'{Path.GetFullPath(path)}'", StringComparison.Ordinal) || ex.Message.Contains($"'{path}'", StringComparison.Ordinal));

    // ---- configuration ----

    private static string? Options(List<Exception> chain, IConfiguration settings)
    {
        var failures = chain.OfType<OptionsValidationException>().SelectMany(o => o.Failures.Select(f => Rephrase(o.OptionsType, f, settings))).Distinct().ToList();
        return failures.Count == 0 ? null : $"{Prefix}invalid configuration: {string.Join("; ", failures.Select(f => f.TrimEnd('.')))}.";
    }

    [GeneratedRegex(@"^DataAnnotation validation failed for '(?<type>[^']+)' members: '(?<member>[^']+)' with the error: '(?<error>.*)'\.?$", RegexOptions.Singleline)]
    private static partial Regex DataAnnotationFailure();

    /// <summary>"DataAnnotation validation failed for 'MqttOptions' members: 'Port' with the error: 'The field Port must be
    /// between 0 and 65535.'" becomes "Mqtt:Port must be between 0 and 65535".</summary>
    private static string Rephrase(Type options, string failure, IConfiguration settings)
    {
        if (DataAnnotationFailure().Match(failure) is not { Success: true } m) return failure;
        var section = options.GetField("SectionName")?.GetValue(null) as string;
        var member = m.Groups["member"].Value;
        var key = section is null ? member : $"{section}:{member}";
        var error = m.Groups["error"].Value.Trim().TrimEnd('.');
        var field = $"The field {member} ";
        var value = settings[key] is { } v ? $" (it is '{v}')" : "";
        return (error.StartsWith(field, StringComparison.Ordinal) ? key + " " + error[field.Length..] : $"{key}: {error}") + value;
    }

    [GeneratedRegex(@"^Failed to convert configuration value '(?<value>.*)' at '(?<key>[^']+)' to type '(?<type>[^']+)'")]
    private static partial Regex ConversionFailure();

    private static string? Binding(Exception ex)
    {
        if (ex is not InvalidOperationException || ConversionFailure().Match(ex.Message) is not { Success: true } m) return null;
        var typeName = m.Groups["type"].Value;
        var type = Type.GetType(typeName) ?? typeof(StartupFailure).Assembly.GetType(typeName);
        var expected = type switch
        {
            { IsEnum: true } => "one of " + string.Join(", ", Enum.GetNames(type)),
            _ when type == typeof(int) || type == typeof(long) => "a whole number",
            _ when type == typeof(double) => "a number",
            _ when type == typeof(bool) => "true or false",
            _ when type == typeof(TimeSpan) || type == typeof(TimeSpan?) => "a time span such as 00:00:30 or 30.00:00:00",
            _ => "a " + (type?.Name ?? typeName),
        };
        return $"{Prefix}invalid configuration: {m.Groups["key"].Value} is '{m.Groups["value"].Value}', which is not {expected}.";
    }

    private static string? ConfigurationFile(Exception ex) =>
        ex is InvalidDataException && ex.Message.StartsWith("Failed to load configuration from file", StringComparison.Ordinal)
            ? $"{Prefix}{ex.Message.TrimEnd('.')} ({ex.InnerException?.Message.TrimEnd('.')})."
            : null;
}
