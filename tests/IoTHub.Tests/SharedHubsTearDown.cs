using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests;

/// <summary>Stops the shared hosts after the last fixture of the assembly (every fixture is in this namespace).</summary>
[SetUpFixture]
public sealed class SharedHubsTearDown
{
    [OneTimeTearDown]
    public Task StopSharedHubs() => SharedHubs.StopAsync();
}
