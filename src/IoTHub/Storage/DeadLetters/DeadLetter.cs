using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace IoTHub.Storage.DeadLetters;

/// <summary>A rejected message: who sent it, when, over what, why, and its first bytes. Written by the telemetry writer.</summary>
internal sealed class DeadLetter
{
    public long Id { get; set; }
    public string DeviceId { get; set; } = "";
    public long ReceivedAt { get; set; }
    public string Protocol { get; set; } = "";
    public string Reason { get; set; } = "";
    public byte[] Payload { get; set; } = [];
    public int PayloadSize { get; set; }
}

internal sealed class DeadLetterConfiguration : IEntityTypeConfiguration<DeadLetter>
{
    public void Configure(EntityTypeBuilder<DeadLetter> b)
    {
        b.ToTable("dead_letters");
        b.HasKey(x => x.Id);
        b.Property(x => x.Id).HasColumnName("id");
        b.Property(x => x.DeviceId).HasColumnName("device_id").HasMaxLength(64);
        b.Property(x => x.ReceivedAt).HasColumnName("received_at");
        b.Property(x => x.Protocol).HasColumnName("protocol").HasMaxLength(8);
        b.Property(x => x.Reason).HasColumnName("reason");
        b.Property(x => x.Payload).HasColumnName("payload");
        b.Property(x => x.PayloadSize).HasColumnName("payload_size");
        b.HasIndex(x => new { x.DeviceId, x.Id });
        b.HasIndex(x => x.ReceivedAt);
    }
}
