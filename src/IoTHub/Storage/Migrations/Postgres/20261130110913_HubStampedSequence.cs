using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace IoTHub.Storage.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class HubStampedSequence : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // Raw telemetry is keyed by (series_id, ts, seq): 0 for a point at its device's timestamp (a resend is the same
            // row), the hub's arrival sequence number for a point it stamped (docs/adr/0005). The partitions follow the
            // parent's key; existing rows are device points or single readings of their millisecond, so 0 suits them all.
            migrationBuilder.Sql("""
                ALTER TABLE telemetry ADD COLUMN seq bigint NOT NULL DEFAULT 0;
                ALTER TABLE telemetry DROP CONSTRAINT "PK_telemetry";
                ALTER TABLE telemetry ADD CONSTRAINT "PK_telemetry" PRIMARY KEY (series_id, ts, seq);
                """);
            // Sums written before they saturated may be infinite (or NaN, from +Infinity and -Infinity): clamp them, so
            // that the merge never meets a non-finite operand and no answer carries one.
            foreach (var table in new[] { "rollup_1m", "rollup_1h", "rollup_1d" })
            {
                migrationBuilder.Sql($"""
                    UPDATE {table} SET sum = CASE WHEN sum = 'NaN'::float8 THEN 0 WHEN sum > 0 THEN 1.7976931348623157e308 ELSE -1.7976931348623157e308 END
                    WHERE sum IN ('Infinity'::float8, '-Infinity'::float8, 'NaN'::float8);
                    """);
            }

            migrationBuilder.AddColumn<long>(
                name: "last_seq",
                table: "series",
                type: "bigint",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "last_seq",
                table: "rollup_1m",
                type: "bigint",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "last_seq",
                table: "rollup_1h",
                type: "bigint",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "last_seq",
                table: "rollup_1d",
                type: "bigint",
                nullable: false,
                defaultValue: 0L);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            // A downgrade keeps one point per (series, millisecond): the old key cannot hold hub-stamped readings that share one.
            migrationBuilder.Sql("""
                DELETE FROM telemetry a USING telemetry b WHERE a.series_id = b.series_id AND a.ts = b.ts AND a.seq > b.seq;
                ALTER TABLE telemetry DROP CONSTRAINT "PK_telemetry";
                ALTER TABLE telemetry DROP COLUMN seq;
                ALTER TABLE telemetry ADD CONSTRAINT "PK_telemetry" PRIMARY KEY (series_id, ts);
                """);
            migrationBuilder.DropColumn(
                name: "last_seq",
                table: "series");

            migrationBuilder.DropColumn(
                name: "last_seq",
                table: "rollup_1m");

            migrationBuilder.DropColumn(
                name: "last_seq",
                table: "rollup_1h");

            migrationBuilder.DropColumn(
                name: "last_seq",
                table: "rollup_1d");
        }
    }
}
