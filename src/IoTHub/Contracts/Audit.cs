using Mediator;

namespace IoTHub.Contracts;

/// <summary>Records an action taken outside the REST API (the web UI) in the audit log.</summary>
public sealed record RecordAuditEntry(string Actor, string ActorKind, string? Role, string Action, string? Target, int Status, string? RemoteAddress, string Path)
    : IRequest<Unit>;
