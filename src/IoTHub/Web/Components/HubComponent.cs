// The base of every page and of the parts a page is made of: the signed-in user and their role, the mediator,
// notifications, and an optional refresh loop for live views. Role checks here are enforced on the server, not only
// by hiding buttons.
using System.Security.Claims;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Authorization;
using Radzen;

namespace IoTHub.Web.Components;

public abstract class HubComponent : ComponentBase, IAsyncDisposable
{
    [Inject] protected ScopedMediator Mediator { get; set; } = default!;
    [Inject] protected NotificationService Notifications { get; set; } = default!;
    [Inject] protected DialogService Dialogs { get; set; } = default!;
    [Inject] protected NavigationManager Nav { get; set; } = default!;
    [Inject] protected TimeProvider Time { get; set; } = default!;
    [Inject] private Microsoft.AspNetCore.Http.IHttpContextAccessor HttpContextAccessor { get; set; } = default!;
    [CascadingParameter] private Task<AuthenticationState> AuthenticationState { get; set; } = default!;

    private CancellationTokenSource? _live;

    protected ClaimsPrincipal User { get; private set; } = new();

    protected bool IsOperator => User.IsInRole(Contracts.Roles.Operator) || User.IsInRole(Contracts.Roles.Admin);

    protected bool IsAdmin => User.IsInRole(Contracts.Roles.Admin);

    /// <summary>Seconds between refreshes of a live view; 0 for one that does not refresh itself.</summary>
    protected virtual int RefreshSeconds => 0;

    protected override async Task OnInitializedAsync()
    {
        User = (await AuthenticationState).User;
        await LoadAsync();
    }

    protected virtual Task LoadAsync() => Task.CompletedTask;

    protected virtual Task RefreshAsync() => LoadAsync();

    protected override void OnAfterRender(bool firstRender)
    {
        if (!firstRender || RefreshSeconds <= 0 || !RendererInfo.IsInteractive) return;
        _live = new CancellationTokenSource();
        _ = RunLiveAsync(_live.Token);
    }

    private async Task RunLiveAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(RefreshSeconds));
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                await InvokeAsync(async () =>
                {
                    await RefreshAsync();
                    StateHasChanged();
                });
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>True when the user has the role; otherwise says so and refuses (the button may have been hidden, the server still checks).</summary>
    protected bool Allowed(string role)
    {
        var ok = role == Contracts.Roles.Admin ? IsAdmin : IsOperator;
        if (!ok) Notifications.Notify(NotificationSeverity.Error, "Not allowed", $"This needs the {role} role.");
        return ok;
    }

    /// <summary>Writes a UI action to the audit log, as the REST API's calls are.</summary>
    protected async Task AuditAsync(string action, string? target, bool succeeded = true)
    {
        await Mediator.Send(new Contracts.RecordAuditEntry(User.Identity?.Name ?? "?", "user", User.FindFirst(ClaimTypes.Role)?.Value, action,
            target, succeeded ? 200 : 400, HttpContextAccessor.HttpContext?.Connection.RemoteIpAddress?.ToString() ?? "web UI", "/" + Nav.ToBaseRelativePath(Nav.Uri)));
    }

    protected void Done(string summary, string? detail = null) => Notifications.Notify(NotificationSeverity.Success, summary, detail ?? "", TimeSpan.FromSeconds(4));

    protected void Failed(string summary, string? detail = null) => Notifications.Notify(NotificationSeverity.Error, summary, detail ?? "", TimeSpan.FromSeconds(8));

    public virtual ValueTask DisposeAsync()
    {
        _live?.Cancel();
        _live?.Dispose();
        GC.SuppressFinalize(this);
        return ValueTask.CompletedTask;
    }
}
