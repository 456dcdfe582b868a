// A hub started while PostgreSQL cannot be reached yet (a compose file starting both, a reboot) waits for it, up to
// Storage:StartupWait, and comes up once it can connect; what waiting cannot mend ends the start at once. The hub's own
// binary as a process; PostgreSQL made reachable late through a TCP forwarder the test opens when the hub says it waits.
using System.Net;
using System.Net.Sockets;
using IoTHub.Storage;
using IoTHub.Tests.Infrastructure;
using IoTHub.Testing;
using Npgsql;

namespace IoTHub.Tests.Storage;

public sealed class StartupWaitTests
{
    [Test]
    public void Refused_timed_out_and_starting_up_are_waited_for_and_a_wrong_password_is_not()
    {
        Assert.That(SchemaMigrator.NotReachableYet(new NpgsqlException("Failed to connect", new SocketException((int)SocketError.ConnectionRefused))), Is.Not.Null);
        Assert.That(SchemaMigrator.NotReachableYet(new NpgsqlException("Exception while connecting", new TimeoutException("The operation has timed out."))),
            Does.Contain("timed out"));
        Assert.That(SchemaMigrator.NotReachableYet(new PostgresException("the database system is starting up", "FATAL", "FATAL", PostgresErrorCodes.CannotConnectNow)),
            Does.Contain("starting up"));
        Assert.That(SchemaMigrator.NotReachableYet(new PostgresException("password authentication failed", "FATAL", "FATAL", PostgresErrorCodes.InvalidPassword)), Is.Null);
        Assert.That(SchemaMigrator.NotReachableYet(new PostgresException("database \"x\" does not exist", "FATAL", "FATAL", PostgresErrorCodes.InvalidCatalogName)), Is.Null);
        Assert.That(SchemaMigrator.NotReachableYet(new InvalidOperationException("no")), Is.Null);
    }

    [Test]
    public async Task A_hub_started_before_postgres_is_reachable_waits_and_starts_once_it_is()
    {
        TestPostgres.RequireAvailable();
        var database = await TestPostgres.CreateDatabaseAsync();
        var data = Directory.CreateTempSubdirectory("iothub-wait-").FullName;
        var late = new NpgsqlConnectionStringBuilder(database) { Port = TestPorts.Tcp(), Timeout = 2 };
        try
        {
            using var hub = HubProcess.Start(HubPorts.Free(), ["--Storage:Provider=Postgres", $"--ConnectionStrings:Postgres={late}", $"--DataDirectory={data}",
                $"--Bootstrap:AdminPassword={HubHost.AdminPassword}", "--Storage:StartupWait=00:02:00"]);
            await WaitFor.ConditionAsync(() => hub.Output.Contains("PostgreSQL cannot be reached yet", StringComparison.Ordinal) || hub.HasExited,
                "the hub says it waits for PostgreSQL", TimeSpan.FromSeconds(60));
            Assert.That(hub.HasExited, Is.False, hub.Output);
            using var forwarder = Forwarder.Start(late.Port, new NpgsqlConnectionStringBuilder(database).Port);
            using var http = await hub.ReadyAsync(TimeSpan.FromSeconds(90));
            Assert.That(hub.Output, Does.Contain("Database schema is up to date"));
            Assert.That(hub.Output, Does.Not.Contain("fail:").And.Not.Contain("crit:"));
            await hub.KillAsync();
        }
        finally
        {
            await TestPostgres.DropDatabaseAsync(database);
            try { Directory.Delete(data, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>Accepts on a loopback port and pipes each connection to another port, both ways.</summary>
    private sealed class Forwarder : IDisposable
    {
        private readonly TcpListener _listener;
        private readonly CancellationTokenSource _stop = new();

        private Forwarder(int from) => _listener = new TcpListener(IPAddress.Loopback, from);

        public static Forwarder Start(int from, int to)
        {
            var f = new Forwarder(from);
            f._listener.Start();
            _ = f.AcceptAsync(to);
            return f;
        }

        private async Task AcceptAsync(int to)
        {
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    _ = PipeAsync(client, to);
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
            }
        }

        private async Task PipeAsync(TcpClient client, int to)
        {
            using (client)
            using (var server = new TcpClient())
            {
                try
                {
                    await server.ConnectAsync(IPAddress.Loopback, to, _stop.Token);
                    await Task.WhenAny(client.GetStream().CopyToAsync(server.GetStream(), _stop.Token), server.GetStream().CopyToAsync(client.GetStream(), _stop.Token));
                }
                catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
                {
                }
            }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Stop();
            _stop.Dispose();
        }
    }
}
