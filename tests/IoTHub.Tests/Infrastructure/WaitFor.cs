namespace IoTHub.Tests.Infrastructure;

/// <summary>Polls an eventually-true condition (presence, async writes) with a deadline, then fails with what was awaited.</summary>
public static class WaitFor
{
    public static async Task ConditionAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (DateTime.UtcNow < deadline)
        {
            if (await condition()) return;
            await Task.Delay(50);
        }
        Assert.Fail($"timed out waiting until {what}");
    }

    public static Task ConditionAsync(Func<bool> condition, string what, TimeSpan? timeout = null) =>
        ConditionAsync(() => Task.FromResult(condition()), what, timeout);
}
