using System.Diagnostics;

namespace IoTHub.Tests.Infrastructure;

/// <summary>Runs a real client nobody here wrote (mosquitto_pub, mosquitto_sub). Missing tools fail in CI and skip elsewhere.</summary>
public static partial class ExternalTool
{
    public static Task<(int Code, string Output)> RunAsync(string file, params string[] args) => RunWithInputAsync(file, null, args);

    /// <summary>Runs the tool with <paramref name="input"/> written to its standard input, which is then closed
    /// (e.g. <c>mosquitto_pub -l</c>, which publishes a message per line until the end of its input).</summary>
    public static async Task<(int Code, string Output)> RunWithInputAsync(string file, string? input, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = input is not null };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process p;
        try
        {
            p = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            if (Environment.GetEnvironmentVariable("CI") is "true" or "1") Assert.Fail($"{file} is not installed");
            Assert.Ignore($"{file} is not installed (apt-get install {(file.StartsWith("coap", StringComparison.Ordinal) ? "libcoap3-bin" : "mosquitto-clients")})");
            throw;
        }
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var stdout = p.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = p.StandardError.ReadToEndAsync(timeout.Token);
        if (input is not null)
        {
            await p.StandardInput.WriteAsync(input.AsMemory(), timeout.Token);
            p.StandardInput.Close();
        }
        await p.WaitForExitAsync(timeout.Token);
        var output = await stdout + await stderr;
        return (p.ExitCode, file.StartsWith("coap", StringComparison.Ordinal) ? WithoutLogTimes(output) : output);
    }

    /// <summary>libcoap's log lines without the time of day they start with (<c>Dec 02 20:07:02.040 WARN …</c>): its digits
    /// read like a response code (<c>02.040</c> holds <c>2.04</c>), and specs look for those in the output. CI ran
    /// <c>Does.Not.Contain("2.04")</c> on a refused handshake at 20:07:02.040 and failed.</summary>
    internal static string WithoutLogTimes(string output) => LibcoapLogTime().Replace(output, "");

    [System.Text.RegularExpressions.GeneratedRegex(@"(?m)^[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)? ")]
    private static partial System.Text.RegularExpressions.Regex LibcoapLogTime();
}

/// <summary>RabbitMQ for the tests of Broker:Mode RabbitMq.</summary>
public static class TestRabbitMq
{
    /// <summary>Skips (or, in CI, fails) the test when rabbitmq-server is not installed.</summary>
    public static void RequireInstalled()
    {
        if (IoTHub.Testing.RabbitMqNode.Unavailable() is not { } why) return;
        if (Environment.GetEnvironmentVariable("CI") is "true" or "1") Assert.Fail(why);
        Assert.Ignore(why);
    }
}
