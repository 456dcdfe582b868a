// The OpenAPI document says how to authenticate and which role each endpoint needs; /docs serves Swagger UI
// (its assets are embedded in the package, nothing is fetched from the internet) over that document.
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace IoTHub.Observability;

internal static class ApiDescription
{
    public static void Configure(OpenApiOptions o)
    {
        o.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "IoTHub API";
            document.Info.Description = "Apps and admins authenticate with `Authorization: Bearer <token>` (POST /api/v1/auth/token) or `X-Api-Key: <key>`. " +
                "Device endpoints (tag *Device API*) take the device token as bearer. Roles: viewers read; operators also manage devices and send commands; admins also manage users, keys and settings.";
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes = new Dictionary<string, IOpenApiSecurityScheme>
            {
                ["bearer"] = new OpenApiSecurityScheme { Type = SecuritySchemeType.Http, Scheme = "bearer", Description = "A user's access token, or a device token on device endpoints" },
                ["apiKey"] = new OpenApiSecurityScheme { Type = SecuritySchemeType.ApiKey, In = ParameterLocation.Header, Name = "X-Api-Key", Description = "An API key" },
            };
            return Task.CompletedTask;
        });
        o.AddOperationTransformer((operation, context, _) =>
        {
            var metadata = context.Description.ActionDescriptor.EndpointMetadata;
            var device = metadata.OfType<Contracts.DeviceAuthenticatedEndpoint>().Any();
            var anonymous = !device && metadata.OfType<IAllowAnonymous>().Any();
            var policy = metadata.OfType<IAuthorizeData>().Select(a => a.Policy).LastOrDefault(p => p is not null);
            var auth = device ? "the device's own token as bearer"
                : anonymous ? "none"
                : policy switch { "admin" => "role admin", "operator" => "role operator or admin", _ => "any role (viewer, operator, admin)" };
            operation.Description = (operation.Description is { Length: > 0 } d ? d + "\n\n" : "") + $"**Auth:** {auth}.";
            if (!anonymous)
            {
                var document = context.Document;
                operation.Security =
                [
                    new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("bearer", document)] = [] },
                    .. device ? Array.Empty<OpenApiSecurityRequirement>() : [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("apiKey", document)] = [] }],
                ];
            }
            return Task.CompletedTask;
        });
    }
}
