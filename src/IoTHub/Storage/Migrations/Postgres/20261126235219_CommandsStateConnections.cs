using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace IoTHub.Storage.Migrations.Postgres
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
                    id = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    device_id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    name = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    @params = table.Column<string>(name: "params", type: "text", nullable: true),
                    state = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    idempotency_key = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: true),
                    deliver_when_online = table.Column<bool>(type: "boolean", nullable: false),
                    created_at = table.Column<long>(type: "bigint", nullable: false),
                    expires_at = table.Column<long>(type: "bigint", nullable: true),
                    sent_at = table.Column<long>(type: "bigint", nullable: true),
                    delivered_at = table.Column<long>(type: "bigint", nullable: true),
                    completed_at = table.Column<long>(type: "bigint", nullable: true),
                    response_status = table.Column<string>(type: "character varying(8)", maxLength: 8, nullable: true),
                    result = table.Column<string>(type: "text", nullable: true),
                    error = table.Column<string>(type: "character varying(500)", maxLength: 500, nullable: true),
                    requested_by = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_device_commands", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "device_connections",
                columns: table => new
                {
                    id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    device_id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    client_id = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    protocol = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    remote_address = table.Column<string>(type: "character varying(100)", maxLength: 100, nullable: true),
                    connected_at = table.Column<long>(type: "bigint", nullable: false),
                    disconnected_at = table.Column<long>(type: "bigint", nullable: true),
                    disconnect_reason = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_device_connections", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "device_states",
                columns: table => new
                {
                    device_id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    desired = table.Column<string>(type: "text", nullable: false),
                    desired_version = table.Column<long>(type: "bigint", nullable: false),
                    desired_updated_at = table.Column<long>(type: "bigint", nullable: true),
                    desired_updated_by = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: true),
                    reported = table.Column<string>(type: "text", nullable: false),
                    reported_version = table.Column<long>(type: "bigint", nullable: false),
                    reported_updated_at = table.Column<long>(type: "bigint", nullable: true)
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
