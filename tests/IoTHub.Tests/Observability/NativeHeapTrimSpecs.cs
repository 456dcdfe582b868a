using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using IoTHub.Observability;

namespace IoTHub.Tests.Observability;

/// <summary>The periodic glibc malloc_trim that keeps a hub on SQLite from growing its native memory without end.</summary>
public sealed class NativeHeapTrimSpecs
{
    [Test]
    public void On_linux_glibcs_malloc_trim_is_found_and_runs()
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("glibc's malloc_trim exists on Linux only");

        Assert.That(NativeHeapTrim.TrimNow(), Is.True);
    }

    [Test]
    public void The_hub_runs_the_trim_as_a_hosted_service()
    {
        var services = new ServiceCollection().AddObservability(new ConfigurationBuilder().Build());

        Assert.That(services.Any(d => d.ServiceType == typeof(IHostedService) && d.ImplementationType == typeof(NativeHeapTrim)), Is.True);
    }
}
