using Mediator;

namespace IoTHub.Contracts;

/// <summary>Published by the Webhooks module when it disables an endpoint on its own: the receiver answered
/// <c>410 Gone</c>, or every delivery to it failed for <c>Webhooks:DisableAfter</c> (a day by default). An admin
/// re-enables it with <c>PATCH /api/v1/webhooks/{id} {"enabled": true}</c>. The Alarms module may raise an alarm on it.</summary>
/// <param name="EndpointId">The endpoint's id (<c>/api/v1/webhooks/{id}</c>).</param>
/// <param name="Url">Its URL, for people reading the alarm.</param>
/// <param name="Reason">Why, in one line, e.g. <c>the receiver answered 410 Gone</c>.</param>
/// <param name="At">When it was disabled.</param>
public sealed record WebhookEndpointDisabled(long EndpointId, string Url, string Reason, DateTimeOffset At) : INotification;

/// <summary>An admin enabled an endpoint again (<c>PATCH /api/v1/webhooks/{id} {"enabled": true}</c>); the alarm raised
/// when it was disabled clears.</summary>
/// <param name="EndpointId">The endpoint's id.</param>
/// <param name="At">When it was enabled.</param>
public sealed record WebhookEndpointEnabled(long EndpointId, DateTimeOffset At) : INotification;
