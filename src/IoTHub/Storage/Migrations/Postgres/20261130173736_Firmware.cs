using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace IoTHub.Storage.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class Firmware : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "firmware_artifacts",
                columns: table => new
                {
                    id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    version = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: false),
                    hardware_model = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    profile_id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    notes = table.Column<string>(type: "character varying(4000)", maxLength: 4000, nullable: true),
                    size = table.Column<long>(type: "bigint", nullable: false),
                    sha256 = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    signing_key = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    created_at = table.Column<long>(type: "bigint", nullable: false),
                    created_by = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_firmware_artifacts", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "firmware_campaign_devices",
                columns: table => new
                {
                    campaign_id = table.Column<long>(type: "bigint", nullable: false),
                    device_id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    wave = table.Column<int>(type: "integer", nullable: false),
                    state = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    active = table.Column<int>(type: "integer", nullable: false),
                    bytes = table.Column<long>(type: "bigint", nullable: false),
                    attempt = table.Column<int>(type: "integer", nullable: false),
                    download_retries = table.Column<int>(type: "integer", nullable: false),
                    checksum_retries = table.Column<int>(type: "integer", nullable: false),
                    install_retries = table.Column<int>(type: "integer", nullable: false),
                    timeout_retries = table.Column<int>(type: "integer", nullable: false),
                    reason = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    detail = table.Column<string>(type: "character varying(500)", maxLength: 500, nullable: true),
                    from_version = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: true),
                    state_since = table.Column<long>(type: "bigint", nullable: false),
                    notified_at = table.Column<long>(type: "bigint", nullable: true),
                    installing_since = table.Column<long>(type: "bigint", nullable: true),
                    finished_at = table.Column<long>(type: "bigint", nullable: true),
                    deadline = table.Column<long>(type: "bigint", nullable: true),
                    updated_at = table.Column<long>(type: "bigint", nullable: false),
                    revision = table.Column<int>(type: "integer", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_firmware_campaign_devices", x => new { x.campaign_id, x.device_id });
                });

            migrationBuilder.CreateTable(
                name: "firmware_campaigns",
                columns: table => new
                {
                    id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    name = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: false),
                    artifact_id = table.Column<long>(type: "bigint", nullable: false),
                    version = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: false),
                    definition = table.Column<string>(type: "text", nullable: false),
                    state = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    current_wave = table.Column<int>(type: "integer", nullable: false),
                    wave_count = table.Column<int>(type: "integer", nullable: false),
                    wave_met_at = table.Column<long>(type: "bigint", nullable: true),
                    next_wave_approved = table.Column<bool>(type: "boolean", nullable: false),
                    wave_passed_by_operator = table.Column<bool>(type: "boolean", nullable: false),
                    threshold_since = table.Column<long>(type: "bigint", nullable: false),
                    halt_reason = table.Column<string>(type: "character varying(500)", maxLength: 500, nullable: true),
                    skipped = table.Column<int>(type: "integer", nullable: false),
                    incompatible = table.Column<int>(type: "integer", nullable: false),
                    created_at = table.Column<long>(type: "bigint", nullable: false),
                    created_by = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: true),
                    started_at = table.Column<long>(type: "bigint", nullable: true),
                    finished_at = table.Column<long>(type: "bigint", nullable: true),
                    updated_at = table.Column<long>(type: "bigint", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_firmware_campaigns", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "firmware_devices",
                columns: table => new
                {
                    device_id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    version = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: true),
                    hardware_model = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    version_reported_at = table.Column<long>(type: "bigint", nullable: true),
                    connected_at = table.Column<long>(type: "bigint", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_firmware_devices", x => x.device_id);
                });

            migrationBuilder.CreateIndex(
                name: "IX_firmware_artifacts_version_hardware_model_profile_id",
                table: "firmware_artifacts",
                columns: new[] { "version", "hardware_model", "profile_id" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_firmware_campaign_devices_campaign_id_state_wave",
                table: "firmware_campaign_devices",
                columns: new[] { "campaign_id", "state", "wave" });

            migrationBuilder.CreateIndex(
                name: "IX_firmware_campaign_devices_deadline",
                table: "firmware_campaign_devices",
                column: "deadline",
                filter: "deadline IS NOT NULL");

            migrationBuilder.CreateIndex(
                name: "IX_firmware_campaign_devices_device_id_updated_at",
                table: "firmware_campaign_devices",
                columns: new[] { "device_id", "updated_at" });

            migrationBuilder.CreateIndex(
                name: "ux_firmware_campaign_devices_one_active",
                table: "firmware_campaign_devices",
                column: "device_id",
                unique: true,
                filter: "active = 1");

            migrationBuilder.CreateIndex(
                name: "IX_firmware_campaigns_artifact_id",
                table: "firmware_campaigns",
                column: "artifact_id");

            migrationBuilder.CreateIndex(
                name: "IX_firmware_campaigns_state",
                table: "firmware_campaigns",
                column: "state");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "firmware_artifacts");

            migrationBuilder.DropTable(
                name: "firmware_campaign_devices");

            migrationBuilder.DropTable(
                name: "firmware_campaigns");

            migrationBuilder.DropTable(
                name: "firmware_devices");
        }
    }
}
