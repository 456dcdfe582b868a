# IoTHub in a container: built with the .NET SDK, run on the ASP.NET Core runtime image as its non-root user "app".
# The versions are pinned to the SDK and runtime IoTHub is built and tested with (README, "Docker", says how this
# file was checked: Docker does not run on the build machine).
FROM mcr.microsoft.com/dotnet/sdk:10.0.401 AS build
WORKDIR /src
# Restore in its own layer, from the project file and the build settings only: it is rebuilt when a package or a
# setting changes, not when the code does.
COPY global.json Directory.Build.props Directory.Packages.props ./
COPY src/IoTHub/IoTHub.csproj src/IoTHub/
RUN dotnet restore src/IoTHub/IoTHub.csproj -r linux-x64
COPY . .
# For this image's platform only: the SQLite library for linux-x64, not the native libraries of 22 platforms.
RUN dotnet publish src/IoTHub/IoTHub.csproj -c Release -r linux-x64 --self-contained false --no-restore -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0.12
WORKDIR /app
COPY --from=build /app .
# The data directory belongs to the image's user (APP_UID, 1654) and is private to it, as the hub makes it (0700). A
# named volume starts as a copy of it; a bind-mounted host folder must be writable by uid 1654 (or run the container
# with --user set to the folder's owner): the hub says so, naming the path, if it is not.
RUN mkdir -p /var/lib/iothub/data && chown -R $APP_UID:$APP_UID /var/lib/iothub && chmod 700 /var/lib/iothub/data
USER $APP_UID
# The hub listens on --urls / ASPNETCORE_URLS (default http://0.0.0.0:8080) and MQTT on 1883; the base image's
# ASPNETCORE_HTTP_PORTS would only repeat the first.
ENV IOTHUB_DataDirectory=/var/lib/iothub/data \
    ASPNETCORE_HTTP_PORTS=
VOLUME ["/var/lib/iothub/data"]
# What listens by default. MQTT over TLS (8883) and HTTPS (8443) listen once a certificate is configured: publish them then.
EXPOSE 8080 1883 5683/udp 5684/udp
# The hub's own binary asks GET /health/ready (the image has no curl or wget).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["/app/IoTHub", "--health-check"]
ENTRYPOINT ["/app/IoTHub"]
