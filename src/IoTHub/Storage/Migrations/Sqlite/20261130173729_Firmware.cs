using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace IoTHub.Storage.Migrations.Sqlite
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
                    id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    version = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    hardware_model = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    profile_id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    notes = table.Column<string>(type: "TEXT", maxLength: 4000, nullable: true),
                    size = table.Column<long>(type: "INTEGER", nullable: false),
                    sha256 = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    signing_key = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    created_at = table.Column<long>(type: "INTEGER", nullable: false),
                    created_by = table.Column<string>(type: "TEXT", maxLength: 200, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_firmware_artifacts", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "firmware_campaign_devices",
                columns: table => new
                {
                    campaign_id = table.Column<long>(type: "INTEGER", nullable: false),
                    device_id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    wave = table.Column<int>(type: "INTEGER", nullable: false),
                    state = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    active = table.Column<int>(type: "INTEGER", nullable: false),
                    bytes = table.Column<long>(type: "INTEGER", nullable: false),
                    attempt = table.Column<int>(type: "INTEGER", nullable: false),
                    download_retries = table.Column<int>(type: "INTEGER", nullable: false),
                    checksum_retries = table.Column<int>(type: "INTEGER", nullable: false),
                    install_retries = table.Column<int>(type: "INTEGER", nullable: false),
                    timeout_retries = table.Column<int>(type: "INTEGER", nullable: false),
                    reason = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    detail = table.Column<string>(type: "TEXT", maxLength: 500, nullable: true),
                    from_version = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    state_since = table.Column<long>(type: "INTEGER", nullable: false),
                    notified_at = table.Column<long>(type: "INTEGER", nullable: true),
                    installing_since = table.Column<long>(type: "INTEGER", nullable: true),
                    finished_at = table.Column<long>(type: "INTEGER", nullable: true),
                    deadline = table.Column<long>(type: "INTEGER", nullable: true),
                    updated_at = table.Column<long>(type: "INTEGER", nullable: false),
                    revision = table.Column<int>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_firmware_campaign_devices", x => new { x.campaign_id, x.device_id });
                });

            migrationBuilder.CreateTable(
                name: "firmware_campaigns",
                columns: table => new
                {
                    id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    name = table.Column<string>(type: "TEXT", maxLength: 200, nullable: false),
                    artifact_id = table.Column<long>(type: "INTEGER", nullable: false),
                    version = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    definition = table.Column<string>(type: "TEXT", nullable: false),
                    state = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    current_wave = table.Column<int>(type: "INTEGER", nullable: false),
                    wave_count = table.Column<int>(type: "INTEGER", nullable: false),
                    wave_met_at = table.Column<long>(type: "INTEGER", nullable: true),
                    next_wave_approved = table.Column<bool>(type: "INTEGER", nullable: false),
                    wave_passed_by_operator = table.Column<bool>(type: "INTEGER", nullable: false),
                    threshold_since = table.Column<long>(type: "INTEGER", nullable: false),
                    halt_reason = table.Column<string>(type: "TEXT", maxLength: 500, nullable: true),
                    skipped = table.Column<int>(type: "INTEGER", nullable: false),
                    incompatible = table.Column<int>(type: "INTEGER", nullable: false),
                    created_at = table.Column<long>(type: "INTEGER", nullable: false),
                    created_by = table.Column<string>(type: "TEXT", maxLength: 200, nullable: true),
                    started_at = table.Column<long>(type: "INTEGER", nullable: true),
                    finished_at = table.Column<long>(type: "INTEGER", nullable: true),
                    updated_at = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_firmware_campaigns", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "firmware_devices",
                columns: table => new
                {
                    device_id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    version = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    hardware_model = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    version_reported_at = table.Column<long>(type: "INTEGER", nullable: true),
                    connected_at = table.Column<long>(type: "INTEGER", nullable: true)
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
