# Multi-stage: build with the SDK, run the published binary as a non-root user.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish src/IoTHub -c Release -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /var/lib/iothub
COPY --from=build /app /app
RUN mkdir -p /var/lib/iothub/data && chown -R app:app /var/lib/iothub && chmod 700 /var/lib/iothub/data
USER app
ENV IOTHUB_DataDirectory=/var/lib/iothub/data \
    ASPNETCORE_URLS=http://0.0.0.0:8080
VOLUME ["/var/lib/iothub/data"]
EXPOSE 8080 1883 8883 5683/udp
ENTRYPOINT ["dotnet", "/app/IoTHub.dll"]
