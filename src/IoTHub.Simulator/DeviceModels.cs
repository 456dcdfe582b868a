// Realistic payloads per kind of device, in the contract's JSON shapes.
using System.Globalization;
using System.Text;

namespace IoTHub.Simulator;

public enum DeviceModel { Thermostat, Vibration, Vehicle }

/// <summary>A fault the vibration model can show, to try alarm rules on: <c>drift</c> (a bearing wearing out: the RMS
/// velocity climbs by <see cref="PayloadFactory.DriftPerMinute"/> mm/s every minute) or <c>spike</c> (one reading of
/// <see cref="PayloadFactory.SpikeRms"/> mm/s ten seconds in, then normal again).</summary>
public enum DeviceFault { None, Drift, Spike }

public sealed class PayloadFactory(DeviceModel model, int seed, DeviceFault fault = DeviceFault.None)
{
    /// <summary>mm/s the RMS velocity climbs per minute under <see cref="DeviceFault.Drift"/>.</summary>
    public const double DriftPerMinute = 0.5;
    /// <summary>The one reading (mm/s) of <see cref="DeviceFault.Spike"/>.</summary>
    public const double SpikeRms = 12;
    private long _firstTs;
    private bool _spiked;
    private readonly Random _random = new(seed);
    private double _temperature = 19 + seed % 5;
    private double _odometer = 10_000 + seed;
    private readonly Lock _lock = new();
    private long _lastTs;

    public DeviceModel Model => model;

    /// <summary>The thermostat's target; its temperature drifts toward it. Set by a command or the desired state.</summary>
    public double Setpoint { get; set; } = 21;

    /// <summary>The next reading. Timestamps strictly increase per device (a device with several messages in flight
    /// sends more than one a millisecond), since the hub takes a repeated timestamp for a resent message.</summary>
    public byte[] Next(long tsMs)
    {
        lock (_lock) return NextLocked(Math.Max(tsMs, _lastTs + 1));
    }

    /// <summary>The vibration model's RMS velocity in mm/s: about 0.2 healthy, plus its fault.</summary>
    private double Rms(long tsMs)
    {
        var rms = 0.2 + _random.NextDouble() * 0.05;
        if (_firstTs == 0) _firstTs = tsMs;
        var minutes = (tsMs - _firstTs) / 60_000.0;
        if (fault == DeviceFault.Drift) rms += DriftPerMinute * minutes;
        if (fault == DeviceFault.Spike && !_spiked && tsMs - _firstTs >= 10_000)
        {
            _spiked = true;
            rms = SpikeRms;
        }
        return rms;
    }

    private byte[] NextLocked(long tsMs)
    {
        _lastTs = tsMs;
        var c = CultureInfo.InvariantCulture;
        var json = model switch
        {
            DeviceModel.Thermostat => string.Format(c, "{{\"ts\":{0},\"values\":{{\"temperature\":{1:0.00},\"humidity\":{2:0.0},\"heating\":{3}}}}}",
                tsMs, _temperature += (_random.NextDouble() - 0.5) * 0.2 + (Setpoint - _temperature) * 0.05, 40 + _random.NextDouble() * 10, _temperature < Setpoint ? "true" : "false"),
            DeviceModel.Vibration => string.Format(c, "{{\"ts\":{0},\"values\":{{\"rms\":{1:0.000},\"peak\":{2:0.000},\"rpm\":{3}}}}}",
                tsMs, Rms(tsMs), 0.5 + _random.NextDouble() * 0.3, 1450 + _random.Next(0, 20)),
            _ => string.Format(c, "{{\"ts\":{0},\"values\":{{\"speed\":{1:0.0},\"odometer\":{2:0.000},\"fuel\":{3:0.0},\"state\":\"{4}\"}}}}",
                tsMs, 50 + _random.NextDouble() * 30, _odometer += 0.01, 60 - _random.NextDouble(), "driving"),
        };
        return Encoding.UTF8.GetBytes(json);
    }
}
