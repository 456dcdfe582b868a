using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace IoTHub.Storage.Migrations.Sqlite
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
                type: "INTEGER",
                nullable: false,
                defaultValue: false);

            migrationBuilder.CreateTable(
                name: "device_profiles",
                columns: table => new
                {
                    id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    name = table.Column<string>(type: "TEXT", maxLength: 200, nullable: true),
                    unknown_metrics = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    clock_policy = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    report_interval_seconds = table.Column<int>(type: "INTEGER", nullable: true),
                    metrics = table.Column<string>(type: "TEXT", nullable: false),
                    created_at = table.Column<long>(type: "INTEGER", nullable: false)
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
