// The hub's binary started as its own process, as a user starts it, with one thing wrong each time: it must exit
// non-zero with one sentence on stderr that names what to change, and never print a stack trace.
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using IoTHub.Tests.Infrastructure;
using Npgsql;

namespace IoTHub.Tests.Host;

/// <summary>Each test starts a process of its own on ports and a folder of its own (an instance of the fixture per test),
/// so they run two at a time: most of a test is the process starting.</summary>
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
[Parallelizable(ParallelScope.Children)]
public sealed class StartupFailureTests
{
    private string _root = null!;
    private string _data = null!;
    private HubPorts _ports = null!;
    private int _http, _mqtt;

    [SetUp]
    public void Prepare()
    {
        _root = Path.Combine(Path.GetTempPath(), "iothub-startup-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_root);
        _data = Path.Combine(_root, "data");
        _ports = HubPorts.Free();
        (_http, _mqtt) = (_ports.Http, _ports.Mqtt);
    }

    [TearDown]
    public void CleanUp()
    {
        foreach (var dir in Directory.EnumerateDirectories(_root, "*", SearchOption.AllDirectories))
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Directory.Delete(_root, true);
    }

    private sealed record Run(int ExitCode, string Stdout, string Stderr)
    {
        public string Output => Stdout + Stderr;
    }

    /// <summary>Runs the hub with its usual test settings, then <paramref name="extra"/> (a later setting wins), until it
    /// exits or <paramref name="whenReady"/> has looked at a hub that started.</summary>
    private async Task<Run> RunHubAsync(string[] extra, Func<Task>? whenReady = null)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[]
                 {
                     Path.Combine(AppContext.BaseDirectory, "IoTHub.dll"), $"--DataDirectory={_data}", $"--Bootstrap:AdminPassword={HubHost.AdminPassword}",
                 }.Concat(_ports.Arguments).Concat(extra))
            psi.ArgumentList.Add(a);
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        using var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            if (whenReady is null)
            {
                await p.WaitForExitAsync(timeout.Token);
            }
            else
            {
                await WaitUntilReadyAsync(p, timeout.Token);
                await whenReady();
                // The console logger writes on a thread of its own: killed as soon as it answers, the hub could take lines
                // of its start with it. "Application started" is its last; every line before it has been written then.
                await WaitFor.ConditionAsync(() => { lock (stdout) return stdout.ToString().Contains("Application started", StringComparison.Ordinal); },
                    "the hub's start-up lines are written", TimeSpan.FromSeconds(30));
                p.Kill(entireProcessTree: true);
                await p.WaitForExitAsync(timeout.Token);
            }
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"the hub neither failed nor became ready within 60 s:\n{stdout}{stderr}");
        }
        p.WaitForExit(); // the end of both redirected streams
        lock (stdout) lock (stderr) return new Run(p.ExitCode, stdout.ToString(), stderr.ToString());
    }

    private async Task WaitUntilReadyAsync(Process p, CancellationToken ct)
    {
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_http}") };
        while (true)
        {
            Assert.That(p.HasExited, Is.False, "the hub exited instead of starting");
            try
            {
                if ((await http.GetAsync("/health/ready", ct)).IsSuccessStatusCode) return;
            }
            catch (HttpRequestException)
            {
            }
            await Task.Delay(100, ct);
        }
    }

    /// <summary>Exit code 1, one line on stderr that says <paramref name="expected"/>, and nowhere a stack trace.</summary>
    private static void AssertOneSentence(Run run, params string[] expected)
    {
        Assert.That(run.ExitCode, Is.Not.Zero, run.Output);
        var lines = run.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.That(lines, Has.Length.EqualTo(1), run.Output);
        Assert.That(lines[0], Does.StartWith("IoTHub cannot start: ").And.EndWith("."));
        foreach (var e in expected) Assert.That(lines[0], Does.Contain(e));
        Assert.That(run.Output, Does.Not.Match(@"(?m)^\s+at \S").And.Not.Contain("Exception").And.Not.Contain("fail:").And.Not.Contain("crit:"),
            "no stack trace, no exception, no error log line");
    }

    /// <summary>The port the sentence suggests through <paramref name="variable"/> (e.g. IOTHUB_Mqtt__Port=1884).</summary>
    private static int Suggested(Run run, string variable)
    {
        var m = System.Text.RegularExpressions.Regex.Match(run.Stderr, variable + @"=(\d+)");
        Assert.That(m.Success, Is.True, $"{variable}=<port> in: {run.Stderr}");
        return int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Holds <paramref name="port"/> as another program would. A hub of a test running beside this one may be
    /// probing the same port for a free one to suggest (it binds and releases it at once): tried again a moment later.</summary>
    private static TcpListener Occupy(int port)
    {
        for (var attempt = 0; ; attempt++)
        {
            var l = new TcpListener(IPAddress.Loopback, port);
            try
            {
                l.Start();
                return l;
            }
            catch (SocketException) when (attempt < 50)
            {
                l.Dispose();
                Thread.Sleep(20);
            }
        }
    }

    [Test]
    public async Task An_http_port_in_use_is_named_with_the_setting_that_moves_it()
    {
        using var _ = Occupy(_http);
        AssertOneSentence(await RunHubAsync([]), $"port {_http} (HTTP) is already in use", "--urls (or ASPNETCORE_URLS)");
    }

    [Test]
    public async Task An_mqtt_port_in_use_is_named_as_mqtt_with_the_setting_that_moves_it()
    {
        using var _ = Occupy(_mqtt);
        var run = await RunHubAsync([]);
        AssertOneSentence(run, $"port {_mqtt} (MQTT) is already in use", "Mqtt:Port", "IOTHUB_Mqtt__Port=");
        Assert.That(run.Stderr, Does.Not.Contain("http://"));
        Assert.That(Suggested(run, "IOTHUB_Mqtt__Port"), Is.Not.EqualTo(_mqtt).And.Not.EqualTo(_http), "a port neither busy nor the hub's HTTP port");
    }

    [Test]
    public async Task A_failed_first_start_makes_no_user_so_the_password_set_after_it_is_the_admins()
    {
        // As a user does: the first start fails (the MQTT port is taken), then they set the password they want and
        // start again. The failed start must not have made `admin` with a generated password already.
        using (Occupy(_mqtt))
        {
            AssertOneSentence(await RunHubAsync(["--Bootstrap:AdminPassword="]), $"port {_mqtt} (MQTT) is already in use");
        }
        Assert.That(File.Exists(Path.Combine(_data, "initial-admin-password")), Is.False, "no generated password from the failed start");
        const string chosen = "My-chosen-pw-123";
        var run = await RunHubAsync([$"--Bootstrap:AdminPassword={chosen}"], async () =>
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_http}") };
            var login = await http.PostAsJsonAsync("/api/v1/auth/token", new { username = "admin", password = chosen });
            Assert.That(login.StatusCode, Is.EqualTo(HttpStatusCode.OK), "admin signs in with the password set after the failed start");
        });
        Assert.That(run.Output, Does.Contain("Created user 'admin' with the password from Bootstrap:AdminPassword"));
    }

    [Test]
    public async Task A_first_admin_password_set_when_users_exist_is_said_to_be_unused()
    {
        await RunHubAsync([], () => Task.CompletedTask); // the first start makes admin with the tests' password
        var run = await RunHubAsync(["--Bootstrap:AdminPassword=Another-password-1"], () => Task.CompletedTask);
        Assert.That(run.Output, Does.Contain("Bootstrap:AdminPassword is set but was not used: it applies to the first start only"));
    }

    [Test]
    public async Task A_port_in_use_suggests_a_port_that_is_free_and_none_of_the_hubs_own()
    {
        // The next port up is the hub's own HTTP port, the one after it is held by another program: both are skipped.
        var mqtt = IoTHub.Testing.TestPorts.TcpRun(4);
        using var busy = Occupy(mqtt);
        using var next = Occupy(mqtt + 2);
        var run = await RunHubAsync([$"--Mqtt:Port={mqtt}", "--urls", $"http://127.0.0.1:{mqtt + 1}"]);
        AssertOneSentence(run, $"port {mqtt} (MQTT) is already in use", "Mqtt:Port");
        Assert.That(Suggested(run, "IOTHUB_Mqtt__Port"), Is.EqualTo(mqtt + 3));
    }

    [Test]
    public async Task A_coap_port_in_use_is_named_as_coap_with_the_setting_that_moves_it()
    {
        var coap = IoTHub.Testing.TestPorts.UdpRun(2);
        using var udp = new System.Net.Sockets.UdpClient(new System.Net.IPEndPoint(System.Net.IPAddress.Any, coap));
        // DTLS on the next port up, as the defaults have it (5683 and 5684): the suggestion must not be that port, or
        // following it fails the next start with "Coap:Port and Coap:DtlsPort must differ".
        var run = await RunHubAsync([$"--Coap:Port={coap}", $"--Coap:DtlsPort={coap + 1}"]);
        AssertOneSentence(run, $"port {coap} (CoAP) is already in use", "Coap:Port", "IOTHUB_Coap__Port=");
        Assert.That(Suggested(run, "IOTHUB_Coap__Port"), Is.Not.EqualTo(coap).And.Not.EqualTo(coap + 1));
    }

    [Test]
    public async Task A_dtls_port_in_use_is_named_as_coap_over_dtls_with_the_setting_that_moves_it()
    {
        var port = IoTHub.Testing.TestPorts.UdpRun(2);
        using var udp = new System.Net.Sockets.UdpClient(new System.Net.IPEndPoint(System.Net.IPAddress.Any, port));
        var run = await RunHubAsync([$"--Coap:DtlsPort={port}", $"--Coap:Port={port + 1}"]);
        AssertOneSentence(run, $"port {port} (CoAP over DTLS) is already in use", "Coap:DtlsPort", "IOTHUB_Coap__DtlsPort=");
        Assert.That(Suggested(run, "IOTHUB_Coap__DtlsPort"), Is.Not.EqualTo(port).And.Not.EqualTo(port + 1));
    }

    [TestCase("Mqtt:TlsPort", "MQTT over TLS")]
    [TestCase("Tls:HttpsPort", "HTTPS")]
    public async Task A_tls_port_in_use_is_named_with_the_setting_that_moves_it(string setting, string what)
    {
        var (cert, key) = WriteCertificate();
        var port = HubHost.FreeTcpPort();
        var other = HubHost.FreeTcpPort();
        using var _ = Occupy(port);
        var ports = setting == "Mqtt:TlsPort" ? new[] { $"--Mqtt:TlsPort={port}", $"--Tls:HttpsPort={other}" } : [$"--Mqtt:TlsPort={other}", $"--Tls:HttpsPort={port}"];
        AssertOneSentence(await RunHubAsync([$"--Tls:CertificatePath={cert}", $"--Tls:KeyPath={key}", .. ports]),
            $"port {port} ({what}) is already in use", setting);
    }

    private (string Cert, string Key) WriteCertificate()
    {
        using var rsa = RSA.Create(2048);
        using var cert = TestCertificates.SelfSignedServer(rsa);
        var certPath = Path.Combine(_root, "hub.crt");
        var keyPath = Path.Combine(_root, "hub.key");
        File.WriteAllText(certPath, cert.ExportCertificatePem());
        File.WriteAllText(keyPath, rsa.ExportPkcs8PrivateKeyPem());
        return (certPath, keyPath);
    }

    [TestCase("--Mqtt:Port=70000", "invalid configuration: Mqtt:Port must be between 0 and 65535 (it is '70000')")]
    [TestCase("--Mqtt:Port=abc", "invalid configuration: Mqtt:Port is 'abc', which is not a whole number")]
    [TestCase("--Storage:Provider=Oracle", "invalid configuration: Storage:Provider is 'Oracle', which is not one of Sqlite, Postgres")]
    [TestCase("--Mqtt:Host=example.com", "invalid configuration: Mqtt:Host must be an IP address")]
    [TestCase("--Storage:CommitStallThreshold=00:00:00", "invalid configuration: Storage:CommitStallThreshold must be between 00:00:01 and 01:00:00")]
    [TestCase("--Validation:MaxPastAge=a month", "invalid configuration: Validation:MaxPastAge is 'a month', which is not a time span")]
    [TestCase("--Storage:Provider=Postgres", "ConnectionStrings:Postgres")]
    [TestCase("--Tls:CertificatePath=/nonexistent/hub.pem", "the TLS certificate file /nonexistent/hub.pem (Tls:CertificatePath) does not exist")]
    [TestCase("--Broker:Mode=RabbitMq", "invalid configuration: Broker:Mode RabbitMq needs Storage:Provider Postgres")]
    [TestCase("--Broker:Mode=Kafka", "invalid configuration: Broker:Mode is 'Kafka', which is not one of Embedded, RabbitMq")]
    [TestCase("--urls=http://example.com:8080", "--urls (or ASPNETCORE_URLS) is 'http://example.com:8080', which is not a list of addresses")]
    public async Task An_invalid_setting_is_named_in_one_sentence(string setting, string expected)
    {
        AssertOneSentence(await RunHubAsync([setting]), expected);
    }

    [Test]
    public async Task A_data_directory_that_cannot_be_created_is_named()
    {
        var file = Path.Combine(_root, "a-file");
        await File.WriteAllTextAsync(file, "not a directory");
        var data = Path.Combine(file, "data");
        AssertOneSentence(await RunHubAsync([$"--DataDirectory={data}"]), $"the data directory {data} cannot be written", "DataDirectory");
    }

    [Test]
    public async Task A_read_only_data_directory_is_named()
    {
        if (OperatingSystem.IsWindows()) Assert.Ignore("Unix file modes");
        if (Environment.UserName == "root") Assert.Ignore("running as root, which may write to a read-only directory: this needs an ordinary user");
        Directory.CreateDirectory(_data);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(_data, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        AssertOneSentence(await RunHubAsync([]), $"the data directory {_data} cannot be written (permission denied)");
    }

    [Test]
    public async Task An_unreachable_postgres_server_is_named_with_its_address()
    {
        AssertOneSentence(await RunHubAsync(["--Storage:Provider=Postgres", "--ConnectionStrings:Postgres=Host=127.0.0.1;Port=1;Database=iothub;Username=iothub;Password=x",
                "--Storage:StartupWait=00:00:00"]),
            "cannot reach PostgreSQL at 127.0.0.1:1", "ConnectionStrings:Postgres");
    }

    [Test]
    public async Task An_unreachable_rabbitmq_cluster_is_named_with_its_nodes()
    {
        var postgres = await TestPostgres.CreateDatabaseAsync();
        try
        {
            AssertOneSentence(await RunHubAsync(["--Storage:Provider=Postgres", $"--ConnectionStrings:Postgres={postgres}", "--Broker:Mode=RabbitMq",
                "--ConnectionStrings:RabbitMq=amqp://iothub:secret@127.0.0.1:1/,amqp://iothub:secret@127.0.0.1:2/"]),
                "RabbitMQ at 127.0.0.1:1, 127.0.0.1:2 (ConnectionStrings:RabbitMq) cannot be reached");
        }
        finally
        {
            await TestPostgres.DropDatabaseAsync(postgres);
        }
    }

    [Test]
    public async Task Rabbitmq_mode_without_the_clusters_address_says_which_setting_is_missing()
    {
        var postgres = await TestPostgres.CreateDatabaseAsync();
        try
        {
            AssertOneSentence(await RunHubAsync(["--Storage:Provider=Postgres", $"--ConnectionStrings:Postgres={postgres}", "--Broker:Mode=RabbitMq"]),
                "invalid configuration: Broker:Mode RabbitMq needs the cluster's address in ConnectionStrings:RabbitMq");
        }
        finally
        {
            await TestPostgres.DropDatabaseAsync(postgres);
        }
    }

    [Test]
    public async Task A_wrong_database_password_is_one_sentence()
    {
        TestPostgres.RequireAvailable();
        var cs = new NpgsqlConnectionStringBuilder(TestPostgres.AdminConnectionString) { Database = "postgres", Password = "wrong-" + Guid.NewGuid().ToString("N")[..6] };
        AssertOneSentence(await RunHubAsync(["--Storage:Provider=Postgres", $"--ConnectionStrings:Postgres={cs}"]),
            $"refused user '{cs.Username}'", "password authentication failed", "check Username and Password in ConnectionStrings:Postgres");
    }

    [Test]
    public async Task A_missing_database_that_the_user_may_not_create_says_how_to_create_it()
    {
        await using var role = await TestRole.CreateAsync();
        var database = "iothub_missing_" + Guid.NewGuid().ToString("N")[..8];
        AssertOneSentence(await RunHubAsync(["--Storage:Provider=Postgres", $"--ConnectionStrings:Postgres={role.ConnectionString(database)}"]),
            $"database '{database}' does not exist", $"CREATE DATABASE {database} OWNER {role.Name};", $"ALTER ROLE {role.Name} CREATEDB;");
    }

    [Test]
    public async Task A_database_the_user_may_not_create_tables_in_says_how_to_give_it()
    {
        await using var role = await TestRole.CreateAsync();
        var database = await TestPostgres.CreateDatabaseAsync(); // owned by the admin: on PostgreSQL 15 others may not create in its schema public
        var name = new NpgsqlConnectionStringBuilder(database).Database!;
        try
        {
            await role.AdminAsync($"GRANT CONNECT ON DATABASE {name} TO {role.Name}");
            AssertOneSentence(await RunHubAsync(["--Storage:Provider=Postgres", $"--ConnectionStrings:Postgres={role.ConnectionString(name)}"]),
                $"user '{role.Name}' may not create IoTHub's tables in database '{name}'", $"ALTER DATABASE {name} OWNER TO {role.Name};");
        }
        finally
        {
            await TestPostgres.DropDatabaseAsync(database);
        }
    }

    [TestCase(Store.Sqlite)]
    [TestCase(Store.Postgres)]
    public async Task A_first_start_on_an_empty_database_logs_no_error_and_no_warning(Store store)
    {
        var postgres = store == Store.Postgres ? await TestPostgres.CreateDatabaseAsync() : null;
        try
        {
            var run = await RunHubAsync([$"--Storage:Provider={store}", $"--ConnectionStrings:Postgres={postgres}"], () => Task.CompletedTask);
            Assert.That(run.Output, Does.Contain("Database schema is up to date").And.Contain("Application started"));
            Assert.That(run.Output, Does.Not.Contain("fail:").And.Not.Contain("warn:").And.Not.Contain("crit:"),
                "neither EF Core's failed probe for its history table nor Kestrel's 'Overriding address(es)'");
            Assert.That(run.Stderr, Is.Empty);
        }
        finally
        {
            if (postgres is not null) await TestPostgres.DropDatabaseAsync(postgres);
        }
    }

    /// <summary>A PostgreSQL login without CREATEDB, dropped at the end.</summary>
    private sealed class TestRole : IAsyncDisposable
    {
        public string Name { get; } = "iothub_role_" + Guid.NewGuid().ToString("N")[..8];
        private const string Password = "role-password";

        public static async Task<TestRole> CreateAsync()
        {
            TestPostgres.RequireAvailable();
            var role = new TestRole();
            await role.AdminAsync($"CREATE ROLE {role.Name} LOGIN NOCREATEDB PASSWORD '{Password}'");
            return role;
        }

        public string ConnectionString(string database) =>
            new NpgsqlConnectionStringBuilder(TestPostgres.AdminConnectionString) { Database = database, Username = Name, Password = Password, Pooling = false }.ConnectionString;

        public async Task AdminAsync(string sql)
        {
            await using var c = new NpgsqlConnection(TestPostgres.AdminConnectionString);
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand(sql, c);
            await cmd.ExecuteNonQueryAsync();
        }

        public async ValueTask DisposeAsync() => await AdminAsync($"DROP ROLE IF EXISTS {Name}");
    }
}
