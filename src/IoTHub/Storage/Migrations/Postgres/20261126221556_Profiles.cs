using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace IoTHub.Storage.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class Profiles : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<bool>(
                name: "clock_drift_flagged",
                table: "devices",
                type: "boolean",
                nullable: false,
                defaultValue: false);

            migrationBuilder.CreateTable(
                name: "device_profiles",
                columns: table => new
                {
                    id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    name = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: true),
                    unknown_metrics = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    clock_policy = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    report_interval_seconds = table.Column<int>(type: "integer", nullable: true),
                    metrics = table.Column<string>(type: "text", nullable: false),
                    created_at = table.Column<long>(type: "bigint", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_device_profiles", x => x.id);
                });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "device_profiles");

            migrationBuilder.DropColumn(
                name: "clock_drift_flagged",
                table: "devices");
        }
    }
}
