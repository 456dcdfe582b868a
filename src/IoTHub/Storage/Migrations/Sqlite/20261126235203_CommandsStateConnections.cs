using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace IoTHub.Storage.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class CommandsStateConnections : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "device_commands",
                columns: table => new
                {
                    id = table.Column<string>(type: "TEXT", maxLength: 32, nullable: false),
                    device_id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    name = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    @params = table.Column<string>(name: "params", type: "TEXT", nullable: true),
                    state = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    idempotency_key = table.Column<string>(type: "TEXT", maxLength: 200, nullable: true),
                    deliver_when_online = table.Column<bool>(type: "INTEGER", nullable: false),
                    created_at = table.Column<long>(type: "INTEGER", nullable: false),
                    expires_at = table.Column<long>(type: "INTEGER", nullable: true),
                    sent_at = table.Column<long>(type: "INTEGER", nullable: true),
                    delivered_at = table.Column<long>(type: "INTEGER", nullable: true),
                    completed_at = table.Column<long>(type: "INTEGER", nullable: true),
                    response_status = table.Column<string>(type: "TEXT", maxLength: 8, nullable: true),
                    result = table.Column<string>(type: "TEXT", nullable: true),
                    error = table.Column<string>(type: "TEXT", maxLength: 500, nullable: true),
                    requested_by = table.Column<string>(type: "TEXT", maxLength: 200, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_device_commands", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "device_connections",
                columns: table => new
                {
                    id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    device_id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    client_id = table.Column<string>(type: "TEXT", maxLength: 256, nullable: false),
                    protocol = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    remote_address = table.Column<string>(type: "TEXT", maxLength: 100, nullable: true),
                    connected_at = table.Column<long>(type: "INTEGER", nullable: false),
                    disconnected_at = table.Column<long>(type: "INTEGER", nullable: true),
                    disconnect_reason = table.Column<string>(type: "TEXT", maxLength: 200, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_device_connections", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "device_states",
                columns: table => new
                {
                    device_id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    desired = table.Column<string>(type: "TEXT", nullable: false),
                    desired_version = table.Column<long>(type: "INTEGER", nullable: false),
                    desired_updated_at = table.Column<long>(type: "INTEGER", nullable: true),
                    desired_updated_by = table.Column<string>(type: "TEXT", maxLength: 200, nullable: true),
                    reported = table.Column<string>(type: "TEXT", nullable: false),
                    reported_version = table.Column<long>(type: "INTEGER", nullable: false),
                    reported_updated_at = table.Column<long>(type: "INTEGER", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_device_states", x => x.device_id);
                });

            migrationBuilder.CreateIndex(
                name: "IX_device_commands_device_id_idempotency_key",
                table: "device_commands",
                columns: new[] { "device_id", "idempotency_key" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_device_commands_device_id_state_created_at",
                table: "device_commands",
                columns: new[] { "device_id", "state", "created_at" });

            migrationBuilder.CreateIndex(
                name: "IX_device_commands_state_expires_at",
                table: "device_commands",
                columns: new[] { "state", "expires_at" });

            migrationBuilder.CreateIndex(
                name: "IX_device_connections_device_id_id",
                table: "device_connections",
                columns: new[] { "device_id", "id" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "device_commands");

            migrationBuilder.DropTable(
                name: "device_connections");

            migrationBuilder.DropTable(
                name: "device_states");
        }
    }
}
