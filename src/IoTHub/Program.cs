var app = IoTHub.HubApp.Build(args);
await app.RunAsync();
