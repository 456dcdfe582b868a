// A fixture's hub: the shared host of its store (started once for every fixture that needs nothing special; tests
// make their own devices, keys and users, so they do not see each other), or a host of its own when the fixture
// changes settings, adjusts the host, or says why it needs one with [OwnHost].
using System.Reflection;
using Microsoft.AspNetCore.Builder;

namespace IoTHub.Tests.Infrastructure;

/// <summary>The hub the fixture's tests run against, on the store the fixture is parameterised with.</summary>
public abstract class HubFixture(Store store)
{
    protected Store Store { get; } = store;
    protected HubHost Hub { get; private set; } = null!;

    /// <summary>Settings of a host of the fixture's own; null (the default) runs it on the store's shared host.</summary>
    protected virtual IDictionary<string, string?>? Settings => null;

    /// <summary>Adjusts the host before it is built (e.g. adds a logger provider); a fixture that overrides it gets a
    /// host of its own.</summary>
    protected virtual void Configure(WebApplicationBuilder builder)
    {
    }

    /// <summary>Whether the fixture runs on a host of its own rather than the store's shared one.</summary>
    protected bool HasOwnHost => Settings is not null || ConfiguresHost || GetType().GetCustomAttribute<OwnHostAttribute>() is not null;

    private bool ConfiguresHost =>
        GetType().GetMethod(nameof(Configure), BindingFlags.Instance | BindingFlags.NonPublic, [typeof(WebApplicationBuilder)])!.DeclaringType != typeof(HubFixture);

    [OneTimeSetUp]
    public async Task StartHub() => Hub = HasOwnHost ? await HubHost.StartAsync(Store, Settings, Configure) : await SharedHubs.ForAsync(Store);

    [OneTimeTearDown]
    public async Task StopHub()
    {
        if (HasOwnHost && Hub is not null) await Hub.DisposeAsync();
    }
}

/// <summary>The fixture runs on a host of its own, for the reason given: it restarts the hub, reads something
/// hub-wide (the audit log of the last second, counters since start, the database's connections, the first page of
/// all devices) that other fixtures' tests would change, or has timings that other traffic would disturb.</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class OwnHostAttribute(string reason) : Attribute
{
    public string Reason { get; } = reason;
}
