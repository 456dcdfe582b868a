// `IoTHub --health-check`, the container's HEALTHCHECK: the hub's own binary asks a running hub whether it is ready.
using System.Diagnostics;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Host;

[TestFixture(Store.Sqlite)]
public sealed class HealthProbeTests(Store store) : HubFixture(store)
{
    private static async Task<(int Code, string Output)> ProbeAsync(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "IoTHub.dll"));
        psi.ArgumentList.Add("--health-check");
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await p.WaitForExitAsync(timeout.Token);
        return (p.ExitCode, await stdout + await stderr);
    }

    [Test]
    public async Task A_ready_hub_passes_the_probe()
    {
        var (code, output) = await ProbeAsync(new Uri(Hub.BaseAddress, "/health/ready").ToString());
        Assert.That(code, Is.Zero, output);
        Assert.That(output, Does.Contain(": 200 ").And.Contain("Healthy"));
    }

    [Test]
    public async Task Without_a_url_the_probe_asks_the_address_the_hub_listens_on()
    {
        var (code, output) = await ProbeAsync("--urls", $"http://0.0.0.0:{Hub.BaseAddress.Port}");
        Assert.That(code, Is.Zero, output);
        Assert.That(output, Does.StartWith($"http://localhost:{Hub.BaseAddress.Port}/health/ready: 200"));
    }

    [Test]
    public async Task Given_the_hubs_address_the_probe_asks_its_ready_endpoint()
    {
        var (code, output) = await ProbeAsync(Hub.BaseAddress.ToString().TrimEnd('/'));
        Assert.That(code, Is.Zero, output);
        Assert.That(output, Does.StartWith($"{Hub.BaseAddress}health/ready: 200"));
    }

    [Test]
    public async Task A_page_that_is_not_the_health_endpoint_never_passes_the_probe()
    {
        // The sign-in page answers 200 to a browser; asked as the hub's address it is /login/health/ready, which is not
        // ready, and a redirect to the sign-in page is not followed either.
        foreach (var url in new[] { new Uri(Hub.BaseAddress, "/login").ToString(), new Uri(Hub.BaseAddress, "/devices").ToString() })
        {
            var (code, output) = await ProbeAsync(url);
            Assert.That(code, Is.EqualTo(1), output);
            Assert.That(output, Does.Not.Contain(": 200 "), url);
        }
    }

    [TestCase("banana")]
    [TestCase("ftp://localhost:8080")]
    [TestCase("localhost:8080")]
    public async Task A_url_that_is_no_http_address_fails_the_probe_with_one_line(string url)
    {
        var (code, output) = await ProbeAsync(url);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(output.Trim().Split('\n'), Has.Length.EqualTo(1), output);
        Assert.That(output, Does.Contain($"'{url}' is not an http:// or https:// address"));
    }

    [TestCase("http://localhost:8080", "http://localhost:8080/health/ready")]
    [TestCase("http://localhost:8080/", "http://localhost:8080/health/ready")]
    [TestCase("https://example.com/iothub/", "https://example.com/iothub/health/ready")]
    [TestCase("http://localhost:8080/health/ready", "http://localhost:8080/health/ready")]
    [TestCase("http://localhost:8080/health/live", "http://localhost:8080/health/live")]
    [TestCase("http://localhost:8080/?x=1", "http://localhost:8080/health/ready")]
    public void The_probe_asks_the_ready_endpoint_under_the_address_given(string url, string asked)
    {
        Assert.That(HealthProbe.ProbeTarget(url)?.ToString(), Is.EqualTo(asked));
    }

    [Test]
    public async Task No_hub_fails_the_probe_with_one_line()
    {
        var (code, output) = await ProbeAsync($"http://127.0.0.1:{HubHost.FreeTcpPort()}/health/ready");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(output.Trim().Split('\n'), Has.Length.EqualTo(1));
        Assert.That(output, Does.Contain("Connection refused"));
    }
}
