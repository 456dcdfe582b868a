// A real RabbitMQ node (Debian's rabbitmq-server) for the RabbitMq broker mode's tests and benchmark (this file is
// linked into IoTHub.Benchmarks, so it uses no NUnit): its own node name, ports, data and cookie under a temporary
// folder, started from the package's scripts without the system service, with the configuration of deploy/rabbitmq/
// pointed at a hub's HTTP port. Several nodes can form a cluster (JoinAsync).
using System.Diagnostics;

namespace IoTHub.Testing;

public sealed class RabbitMqNode : IAsyncDisposable
{
    private const string Bin = "/usr/lib/rabbitmq/bin";
    public const string Password = "iothub-test-secret";

    private readonly string _dir;
    private readonly Process _process;
    private readonly List<string> _output = [];

    public string NodeName { get; }
    public int AmqpPort { get; }
    public int MqttPort { get; }
    public int ManagementPort { get; }

    /// <summary>The AMQP URI of the hub's own user (RabbitMQ's internal user database).</summary>
    public string AmqpUri => $"amqp://iothub:{Password}@127.0.0.1:{AmqpPort}/";

    /// <summary>The management API with the hub's user, for RabbitMq:ManagementUri.</summary>
    public string ManagementUri => $"http://iothub:{Password}@127.0.0.1:{ManagementPort}";

    private RabbitMqNode(string dir, string nodeName, int amqp, int mqtt, int management, Process process)
    {
        _dir = dir;
        NodeName = nodeName;
        AmqpPort = amqp;
        MqttPort = mqtt;
        ManagementPort = management;
        _process = process;
    }

    /// <summary>Why RabbitMQ cannot run here, or null. In CI, whose script installs it, its absence fails the tests.</summary>
    public static string? Unavailable() =>
        File.Exists(Path.Combine(Bin, "rabbitmq-server")) ? null : "rabbitmq-server is not installed (apt-get install rabbitmq-server)";

    /// <summary>Starts a node whose HTTP auth backend asks the hub listening on <paramref name="hubHttpPort"/>, and waits
    /// until it runs. Nodes meant to form a cluster share <paramref name="cookieHome"/> (their Erlang cookie).</summary>
    /// <remarks>A port that another program takes between its choice and the node's bind (the node stops with
    /// <c>eaddrinuse</c>) costs one more start on other ports, up to three in all.</remarks>
    public static async Task<RabbitMqNode> StartAsync(int hubHttpPort, string? cookieHome = null)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await StartOnceAsync(hubHttpPort, cookieHome);
            }
            catch (InvalidOperationException ex) when (attempt < 3 && ex.Message.Contains("eaddrinuse", StringComparison.Ordinal))
            {
            }
        }
    }

    private static async Task<RabbitMqNode> StartOnceAsync(int hubHttpPort, string? cookieHome)
    {
        var name = "iothub" + Guid.NewGuid().ToString("N")[..8];
        var dir = Path.Combine(Path.GetTempPath(), "iothub-rabbitmq", name);
        Directory.CreateDirectory(dir);
        var home = cookieHome ?? dir;
        var cookie = Path.Combine(home, ".erlang.cookie");
        if (!File.Exists(cookie))
        {
            await File.WriteAllTextAsync(cookie, Guid.NewGuid().ToString("N").ToUpperInvariant());
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(cookie, UnixFileMode.UserRead);
        }
        int amqp = TestPorts.Tcp(), mqtt = TestPorts.Tcp(), management = TestPorts.Tcp(), dist = TestPorts.Tcp();
        // The configuration users get (deploy/rabbitmq/), with this node's ports, the hub's address and the password.
        var deploy = Path.Combine(RepositoryRoot(), "deploy", "rabbitmq");
        var conf = (await File.ReadAllLinesAsync(Path.Combine(deploy, "rabbitmq.conf"))).Select(line => line.Split(" = ")[0] switch
        {
            "listeners.tcp.default" => $"listeners.tcp.default = 127.0.0.1:{amqp}",
            "mqtt.listeners.tcp.default" => $"mqtt.listeners.tcp.default = 127.0.0.1:{mqtt}",
            "management.tcp.port" => $"management.tcp.port = {management}\nmanagement.tcp.ip = 127.0.0.1",
            _ => line.Replace("SECRET", Password, StringComparison.Ordinal).Replace("HUB:8080", $"127.0.0.1:{hubHttpPort}", StringComparison.Ordinal),
        });
        await File.WriteAllLinesAsync(Path.Combine(dir, "rabbitmq.conf"), conf);
        File.Copy(Path.Combine(deploy, "enabled_plugins"), Path.Combine(dir, "enabled_plugins"));
        File.Copy(Path.Combine(deploy, "advanced.config"), Path.Combine(dir, "advanced.config"));
        var nodeName = name + "@localhost";
        var start = new ProcessStartInfo(Path.Combine(Bin, "rabbitmq-server"))
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        var env = start.Environment;
        env["HOME"] = home;
        env["RABBITMQ_NODENAME"] = nodeName;
        env["RABBITMQ_NODE_PORT"] = amqp.ToString(System.Globalization.CultureInfo.InvariantCulture);
        env["RABBITMQ_DIST_PORT"] = dist.ToString(System.Globalization.CultureInfo.InvariantCulture);
        env["RABBITMQ_MNESIA_BASE"] = Path.Combine(dir, "mnesia");
        env["RABBITMQ_LOG_BASE"] = Path.Combine(dir, "log");
        env["RABBITMQ_CONFIG_FILE"] = Path.Combine(dir, "rabbitmq.conf");
        env["RABBITMQ_ENABLED_PLUGINS_FILE"] = Path.Combine(dir, "enabled_plugins");
        env["RABBITMQ_ADVANCED_CONFIG_FILE"] = Path.Combine(dir, "advanced.config");
        var process = Process.Start(start)!;
        var node = new RabbitMqNode(dir, nodeName, amqp, mqtt, management, process) { Home = home };
        // The server prints "Starting broker... completed with N plugins." once it takes connections (polling with
        // rabbitmqctl costs a second of CPU per try on two cores).
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (node._output) node._output.Add(e.Data);
            if (e.Data.Contains("Starting broker... completed", StringComparison.Ordinal)) started.TrySetResult();
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (node._output) node._output.Add(e.Data); };
        process.EnableRaisingEvents = true;
        process.Exited += (_, _) => started.TrySetException(new InvalidOperationException("rabbitmq-server exited"));
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await started.Task.WaitAsync(TimeSpan.FromSeconds(120));
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException)
        {
            await node.DisposeAsync();
            string log;
            bool portTaken;
            lock (node._output)
            {
                log = string.Join('\n', node._output.TakeLast(40));
                portTaken = node._output.Exists(line => line.Contains("eaddrinuse", StringComparison.Ordinal));
            }
            if (portTaken) log = "a port it was given is in use (eaddrinuse)\n" + log;
            throw new InvalidOperationException($"RabbitMQ node {nodeName} did not start ({ex.Message}):\n{log}", ex);
        }
        return node;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "IoTHub.sln"))) return dir.FullName;
        throw new InvalidOperationException("the repository (IoTHub.sln) is not above " + AppContext.BaseDirectory);
    }

    /// <summary>The HOME whose .erlang.cookie the node uses (nodes of one cluster share it).</summary>
    public string Home { get; private init; } = "";

    /// <summary>Runs rabbitmqctl against this node.</summary>
    public async Task<(int Code, string Output)> CtlAsync(params string[] args)
    {
        var info = new ProcessStartInfo(Path.Combine(Bin, "rabbitmqctl")) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add("-n");
        info.ArgumentList.Add(NodeName);
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment["HOME"] = Home;
        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, await stdout + await stderr);
    }

    /// <summary>Joins this node to <paramref name="other"/>'s cluster (stop_app, join_cluster, start_app).</summary>
    public async Task JoinAsync(RabbitMqNode other)
    {
        foreach (var step in new[] { new[] { "stop_app" }, ["join_cluster", other.NodeName], ["start_app"] })
        {
            var (code, text) = await CtlAsync(step);
            if (code != 0) throw new InvalidOperationException($"rabbitmqctl {string.Join(' ', step)} on {NodeName}: {text}");
        }
    }

    /// <summary>Kills the node (as a crash would) and deletes its data.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception ex) when (ex is InvalidOperationException or TimeoutException or System.ComponentModel.Win32Exception) { }
        _process.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
