// A device's command response that the hub fails to record (the commands table taken away under a running hub) is
// never acknowledged as taken. On a host of its own: renaming a table of the store's shared host would fail the
// commands of every fixture running beside it.
using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Commands;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
[OwnHost("renames the commands table to make the response handler fail")]
public sealed class CommandResponseFailureTests(Store store) : HubFixture(store)
{
    [TestCase(MqttProtocolVersion.V500)]
    [TestCase(MqttProtocolVersion.V311)]
    public async Task A_response_the_hub_fails_to_record_is_never_acked_as_taken(MqttProtocolVersion version)
    {
        // The bridge to the modules read a handler's failure as its answer, and for a response null means "taken": the
        // device got PUBACK 0x10 and its answer was lost. The commands table is taken away to make the handler fail.
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token, version);
        await RenameCommandsTableAsync("device_commands", "device_commands_away");
        try
        {
            var publish = client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/commands/abc/response")
                .WithPayload("""{"status": "ok"}""").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            if (version == MqttProtocolVersion.V500)
            {
                var ack = await publish;
                Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.UnspecifiedError));
                Assert.That(ack.ReasonString, Does.Contain("send it again"));
            }
            else
            {
                // MQTT 3.1.1 has no negative PUBACK: the connection is closed without one, so the client sends it again.
                Assert.That(async () => await publish.WaitAsync(TimeSpan.FromSeconds(10)), Throws.InstanceOf<Exception>().And.Not.InstanceOf<TimeoutException>());
                await WaitFor.ConditionAsync(() => !client.IsConnected, "the connection is closed");
            }
        }
        finally
        {
            await RenameCommandsTableAsync("device_commands_away", "device_commands");
        }
    }

    private async Task RenameCommandsTableAsync(string from, string to)
    {
        await using var c = Store == Store.Postgres
            ? (System.Data.Common.DbConnection)new Npgsql.NpgsqlConnection(Hub.PostgresConnectionString)
            : new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(Hub.DataDirectory, "iothub.db")};Pooling=False");
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = $"ALTER TABLE {from} RENAME TO {to}";
        await cmd.ExecuteNonQueryAsync();
    }
}
