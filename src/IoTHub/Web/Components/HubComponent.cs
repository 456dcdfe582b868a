// The base of every page and of the parts a page is made of: the signed-in user and their role, the mediator,
// notifications, and an optional refresh loop for live views. Role checks here are enforced on the server, not only
// by hiding buttons.
using System.Security.Claims;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Authorization;
using Radzen;

namespace IoTHub.Web.Components;

/// <summary>The base class of the UI's pages and their parts (see the file's header).</summary>
public abstract class HubComponent : ComponentBase, IAsyncDisposable
{
    /// <summary>Sends the modules' public requests, each in a DI scope of its own.</summary>
    [Inject] protected ScopedMediator Mediator { get; set; } = default!;

    /// <summary>The toasts of <see cref="Done"/> and <see cref="Failed"/>.</summary>
    [Inject] protected NotificationService Notifications { get; set; } = default!;

    /// <summary>Confirmation dialogs (before a delete, a disable).</summary>
    [Inject] protected DialogService Dialogs { get; set; } = default!;

    /// <summary>The UI's navigation: the current address and moving to another page.</summary>
    [Inject] protected NavigationManager Nav { get; set; } = default!;

    /// <summary>The hub's clock, for "5 minutes ago" and chart ranges (a test can replace it).</summary>
    [Inject] protected TimeProvider Time { get; set; } = default!;
    [Inject] private Microsoft.AspNetCore.Http.IHttpContextAccessor HttpContextAccessor { get; set; } = default!;
    [CascadingParameter] private Task<AuthenticationState> AuthenticationState { get; set; } = default!;

    private CancellationTokenSource? _live;

    /// <summary>The signed-in user (name and role claims); empty until the component is initialised.</summary>
    protected ClaimsPrincipal User { get; private set; } = new();

    /// <summary>The user may change devices, profiles, state and commands (role operator or admin).</summary>
    protected bool IsOperator => User.IsInRole(Contracts.Roles.Operator) || User.IsInRole(Contracts.Roles.Admin);

    /// <summary>The user may also manage users, API keys and settings (role admin).</summary>
    protected bool IsAdmin => User.IsInRole(Contracts.Roles.Admin);

    /// <summary>Seconds between refreshes of a live view; 0 for one that does not refresh itself.</summary>
    protected virtual int RefreshSeconds => 0;

    /// <summary>Reads the signed-in user, then loads the component's data.</summary>
    protected override async Task OnInitializedAsync()
    {
        User = (await AuthenticationState).User;
        await LoadAsync();
    }

    /// <summary>Loads what the component shows; called once at initialisation (and by the default <see cref="RefreshAsync"/>).</summary>
    protected virtual Task LoadAsync() => Task.CompletedTask;

    /// <summary>Called every <see cref="RefreshSeconds"/> seconds on a live view, then the component re-renders; by default
    /// loads everything again.</summary>
    protected virtual Task RefreshAsync() => LoadAsync();

    /// <summary>After the first interactive render, starts the refresh loop of a live view (<see cref="RefreshSeconds"/> &gt; 0).</summary>
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

    /// <summary>A success toast, shown for 4 seconds.</summary>
    protected void Done(string summary, string? detail = null) => Notifications.Notify(NotificationSeverity.Success, summary, detail ?? "", TimeSpan.FromSeconds(4));

    /// <summary>An error toast, shown for 8 seconds (long enough to read what to do about it).</summary>
    protected void Failed(string summary, string? detail = null) => Notifications.Notify(NotificationSeverity.Error, summary, detail ?? "", TimeSpan.FromSeconds(8));

    /// <summary>Stops the refresh loop when the user leaves the page or the circuit ends.</summary>
    public virtual ValueTask DisposeAsync()
    {
        _live?.Cancel();
        _live?.Dispose();
        GC.SuppressFinalize(this);
        return ValueTask.CompletedTask;
    }
}
