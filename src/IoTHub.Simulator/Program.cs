// iothub-sim: a command-line device fleet. Provisions its devices through the API (or takes a CSV of id,token),
// publishes realistic telemetry over MQTT or HTTP and reports sent, acked, acks/s and ack latency. Over MQTT its devices
// also answer commands, follow their desired state and take firmware updates.
using System.Globalization;
using IoTHub.Simulator;
using IoTHub.Simulator.Firmware;

var o = Args.Parse(args);
if (o is null)
{
    Console.WriteLine("""
        usage: dotnet run --project src/IoTHub.Simulator -- [options]
          --url URL            IoTHub HTTP address (default http://localhost:8080)
          --mqtt HOST:PORT     broker (default localhost:1883)
          --devices N          simulated devices (default 10)
          --rate R             messages per second per device; 0 = as fast as acks return (default 1)
          --qos 0|1            MQTT QoS (default 1)
          --mqtt-version 5|3.1.1  MQTT version the devices speak (default 5; 3.1.1 for a RabbitMQ cluster)
          --inflight N         unacknowledged messages a device may have at once (default 1)
          --protocol mqtt|http|coap (default mqtt)
          --coap host:port     CoAP address for --protocol coap (default: --url's host, port 5683)
          --duration SECONDS   (default 30)
          --model thermostat|vibration|vehicle (default thermostat)
          --fault none|drift|spike   vibration only: rms climbs 0.5 mm/s a minute (drift), or one 12 mm/s reading after 10 s (spike)
          --user NAME --password PW   admin login used to provision devices (default admin / data/initial-admin-password)
          --csv FILE           use existing devices from a CSV of id,token instead of provisioning
          --prefix P           device id prefix (default sim)
          --progress SECONDS   print a progress line this often; 0 = only the summary (default 5)
        firmware updates (MQTT; images are downloaded from --url with each device's token):
          --firmware-version V         version the devices start on and report as firmwareVersion (default 1.0.0)
          --firmware-chunk BYTES       bytes per ranged download request (default 65536)
          --firmware-fail-rate R       share of notified devices whose install fails (reason "install") (default 0)
          --firmware-rollback-rate R   share that report succeeded but come back on their old version (default 0)
          --firmware-power-loss-rate R share that drop their connection halfway through the download, reconnect and
                                       resume it from the byte they had (default 0)
          Rates are exact shares, spread evenly over the order devices are notified in: with 0.3, devices 3, 6 and 9
          of each ten (counting from 0) fail. Rollbacks fall on devices that do not fail, so fail 0.3 with rollback
          0.1 is 3 failures and 1 rollback in each ten (fail + rollback rate at most 1).
        """);
    return 2;
}
using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
List<SimDevice> devices;
LoadResult result;
try
{
    if (o.Csv is not null)
    {
        devices = Provisioning.FromCsv(o.Csv);
    }
    else
    {
        using var http = new HttpClient { BaseAddress = o.Url };
        var password = o.Password ?? (File.Exists("data/initial-admin-password") ? File.ReadAllText("data/initial-admin-password").Trim() : null);
        if (password is null)
        {
            Console.Error.WriteLine("iothub-sim: give --password (or run from the folder holding data/initial-admin-password)");
            return 2;
        }
        var bearer = await Provisioning.LoginAsync(http, o.User, password, cts.Token);
        devices = await Provisioning.CreateAsync(http, bearer, o.Prefix, o.Devices, cts.Token);
        Console.WriteLine($"provisioned {devices.Count} devices ({o.Prefix}-0 .. {o.Prefix}-{devices.Count - 1})");
    }
    Console.WriteLine($"{devices.Count} {o.Model} devices, {o.Protocol}, QoS {o.Qos}, {(o.Rate > 0 ? $"{o.Rate}/s each" : "closed loop")}, {o.InFlight} in flight each, {o.Duration.TotalSeconds:0} s ...");
    if (o.Protocol == "mqtt")
    {
        Console.WriteLine("devices answer commands (ping, reboot, setSetpoint) and follow their desired state (setpoint); they reconnect if the hub goes away");
        Console.WriteLine($"they run firmware {o.Firmware.InitialVersion} and take updates from devices/{{id}}/firmware"
            + (o.Firmware is { FailRate: 0, RollbackRate: 0, PowerLossRate: 0 } ? "" : $" (install failures {o.Firmware.FailRate:P0}, rollbacks {o.Firmware.RollbackRate:P0}, power losses {o.Firmware.PowerLossRate:P0})"));
    }
    result = await LoadGenerator.RunAsync(devices, new LoadOptions(o.MqttHost, o.MqttPort, o.Url, o.Protocol, o.Qos, o.Rate, o.Duration, o.Model,
        Interactive: o.Protocol == "mqtt", InFlight: o.InFlight, Progress: p => Console.WriteLine(p), ProgressInterval: o.Progress, Fault: o.Fault,
        Firmware: o.Firmware, CoapHost: o.CoapHost, CoapPort: o.CoapPort, MqttVersion: o.MqttVersion), cts.Token);
}
catch (Exception ex) when (ex is HttpRequestException or MQTTnet.Exceptions.MqttCommunicationException or InvalidOperationException or IOException)
{
    // Before the run: the hub is not there, or refuses the login or a device. During the run the devices reconnect instead.
    Console.Error.WriteLine($"iothub-sim: {ex.Message} (IoTHub at {o.Url}, MQTT {o.MqttHost}:{o.MqttPort})");
    return 1;
}
catch (OperationCanceledException)
{
    return 130;
}
Console.WriteLine(result);
return result.Failed > 0 && result.Acked == 0 ? 1 : 0;

internal sealed record Args(Uri Url, string MqttHost, int MqttPort, int Devices, double Rate, int Qos, string Protocol, TimeSpan Duration,
    DeviceModel Model, string User, string? Password, string? Csv, string Prefix, int InFlight, TimeSpan Progress, DeviceFault Fault,
    FirmwareOptions Firmware, string? CoapHost, int CoapPort, MQTTnet.Formatter.MqttProtocolVersion MqttVersion = MQTTnet.Formatter.MqttProtocolVersion.V500)
{
    public static Args? Parse(string[] args)
    {
        var d = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length) return null;
            d[args[i][2..]] = args[++i];
        }
        var mqtt = d.GetValueOrDefault("mqtt", "localhost:1883").Split(':');
        var protocol = d.GetValueOrDefault("protocol", "mqtt");
        if (protocol is not ("mqtt" or "http" or "coap")) return null;
        var version = d.GetValueOrDefault("mqtt-version", "5") switch
        {
            "5" or "5.0" => MQTTnet.Formatter.MqttProtocolVersion.V500,
            "3.1.1" or "311" => MQTTnet.Formatter.MqttProtocolVersion.V311,
            _ => (MQTTnet.Formatter.MqttProtocolVersion?)null,
        };
        if (version is null) return null;
        var coap = d.GetValueOrDefault("coap", "")?.Split(':') ?? [];
        var firmware = new FirmwareOptions
        {
            InitialVersion = d.GetValueOrDefault("firmware-version", "1.0.0"),
            ChunkSize = int.Parse(d.GetValueOrDefault("firmware-chunk", "65536"), CultureInfo.InvariantCulture),
            FailRate = double.Parse(d.GetValueOrDefault("firmware-fail-rate", "0"), CultureInfo.InvariantCulture),
            RollbackRate = double.Parse(d.GetValueOrDefault("firmware-rollback-rate", "0"), CultureInfo.InvariantCulture),
            PowerLossRate = double.Parse(d.GetValueOrDefault("firmware-power-loss-rate", "0"), CultureInfo.InvariantCulture),
        };
        if (firmware.ChunkSize <= 0 || firmware.InitialVersion.Length == 0
            || new[] { firmware.FailRate, firmware.RollbackRate, firmware.PowerLossRate }.Any(r => r is < 0 or > 1 || double.IsNaN(r))
            || (decimal)firmware.FailRate + (decimal)firmware.RollbackRate > 1) return null;
        return new Args(new Uri(d.GetValueOrDefault("url", "http://localhost:8080")), mqtt[0], mqtt.Length > 1 ? int.Parse(mqtt[1]) : 1883,
            int.Parse(d.GetValueOrDefault("devices", "10")), double.Parse(d.GetValueOrDefault("rate", "1"), System.Globalization.CultureInfo.InvariantCulture),
            int.Parse(d.GetValueOrDefault("qos", "1")), protocol, TimeSpan.FromSeconds(double.Parse(d.GetValueOrDefault("duration", "30"), System.Globalization.CultureInfo.InvariantCulture)),
            Enum.Parse<DeviceModel>(d.GetValueOrDefault("model", "thermostat"), ignoreCase: true), d.GetValueOrDefault("user", "admin"),
            d.GetValueOrDefault("password"), d.GetValueOrDefault("csv"), d.GetValueOrDefault("prefix", "sim"),
            int.Parse(d.GetValueOrDefault("inflight", "1"), System.Globalization.CultureInfo.InvariantCulture),
            TimeSpan.FromSeconds(double.Parse(d.GetValueOrDefault("progress", "5"), System.Globalization.CultureInfo.InvariantCulture)),
            Enum.Parse<DeviceFault>(d.GetValueOrDefault("fault", "none"), ignoreCase: true), firmware,
            coap is [{ Length: > 0 } coapHost, ..] ? coapHost : null, coap.Length > 1 ? int.Parse(coap[1], CultureInfo.InvariantCulture) : 5683, version.Value);
    }
}
