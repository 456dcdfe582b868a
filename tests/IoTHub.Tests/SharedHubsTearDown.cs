using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests;

/// <summary>After the last fixture of the assembly (every fixture is in this namespace): stops the shared hosts, then
/// drops every test database still on the server.</summary>
[SetUpFixture]
public sealed class SharedHubsTearDown
{
    [OneTimeTearDown]
    public async Task StopSharedHubs()
    {
        await SharedHubs.StopAsync();
        var dropped = await TestPostgres.DropLeftoversAsync();
        if (dropped > 0) TestContext.Progress.WriteLine($"Dropped {dropped} test database(s) that their fixtures left behind.");
    }
}
