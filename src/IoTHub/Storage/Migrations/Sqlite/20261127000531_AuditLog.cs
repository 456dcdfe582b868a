using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace IoTHub.Storage.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class AuditLog : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "audit_log",
                columns: table => new
                {
                    id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    at = table.Column<long>(type: "INTEGER", nullable: false),
                    actor = table.Column<string>(type: "TEXT", maxLength: 200, nullable: false),
                    actor_kind = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    role = table.Column<string>(type: "TEXT", maxLength: 16, nullable: true),
                    action = table.Column<string>(type: "TEXT", maxLength: 100, nullable: false),
                    target = table.Column<string>(type: "TEXT", maxLength: 300, nullable: true),
                    method = table.Column<string>(type: "TEXT", maxLength: 10, nullable: false),
                    path = table.Column<string>(type: "TEXT", maxLength: 500, nullable: false),
                    status = table.Column<int>(type: "INTEGER", nullable: false),
                    remote_address = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_audit_log", x => x.id);
                });

            migrationBuilder.CreateIndex(
                name: "IX_audit_log_actor_id",
                table: "audit_log",
                columns: new[] { "actor", "id" });

            migrationBuilder.CreateIndex(
                name: "IX_audit_log_at",
                table: "audit_log",
                column: "at");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "audit_log");
        }
    }
}
