using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace IoTHub.Storage.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class MqttSessions : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "mqtt_sessions",
                columns: table => new
                {
                    client_id = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    principal_kind = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    principal_id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    role = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: true),
                    expiry_seconds = table.Column<long>(type: "bigint", nullable: false),
                    disconnected_at = table.Column<long>(type: "bigint", nullable: true),
                    subscriptions = table.Column<string>(type: "text", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_mqtt_sessions", x => x.client_id);
                });

            migrationBuilder.CreateIndex(
                name: "IX_mqtt_sessions_principal_kind_principal_id",
                table: "mqtt_sessions",
                columns: new[] { "principal_kind", "principal_id" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "mqtt_sessions");
        }
    }
}
