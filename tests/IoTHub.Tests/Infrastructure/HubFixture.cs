namespace IoTHub.Tests.Infrastructure;

/// <summary>Starts the real host once per fixture, on the store the fixture is parameterised with.</summary>
public abstract class HubFixture(Store store)
{
    protected Store Store { get; } = store;
    protected HubHost Hub { get; private set; } = null!;

    protected virtual IDictionary<string, string?>? Settings => null;

    /// <summary>Adjusts the host before it is built (e.g. adds a logger provider).</summary>
    protected virtual void Configure(Microsoft.AspNetCore.Builder.WebApplicationBuilder builder)
    {
    }

    [OneTimeSetUp]
    public async Task StartHub() => Hub = await HubHost.StartAsync(Store, Settings, Configure);

    [OneTimeTearDown]
    public async Task StopHub()
    {
        if (Hub is not null) await Hub.DisposeAsync();
    }
}
