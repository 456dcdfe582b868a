#!/usr/bin/env bash
# A runnable example of IoTHub past one machine, on one machine: three RabbitMQ nodes in a cluster, two IoTHub nodes
# and one PostgreSQL database, from Debian's packages (rabbitmq-server, postgresql) and this repository.
#
#   deploy/rabbitmq/cluster.sh start    # build IoTHub, start everything, print how to connect
#   deploy/rabbitmq/cluster.sh stop     # stop everything (data stays under $BASE)
#   deploy/rabbitmq/cluster.sh clean    # stop and delete $BASE
#
# Ports: RabbitMQ AMQP 5681-5683, MQTT 1891-1893, management 15681-15683; IoTHub HTTP 8081-8082.
# Every RabbitMQ node asks IoTHub node 1 (:8081) who a device is; in production put a load balancer in front of the
# IoTHub nodes' HTTP port and point rabbitmq.conf at it. Needs: rabbitmq-server, postgresql (running, with a role that
# may create a database: PGUSER/PGPASSWORD, default postgres/postgres on 127.0.0.1), the .NET SDK.
set -euo pipefail
cd "$(dirname "$0")/../.."

BASE=${BASE:-/tmp/iothub-cluster}
SECRET=${SECRET:-iothub-cluster-secret}
ADMIN_PASSWORD=${ADMIN_PASSWORD:-cluster-admin-password}
PGUSER=${PGUSER:-postgres} PGPASSWORD=${PGPASSWORD:-postgres}
RMQ=/usr/lib/rabbitmq/bin
export HOME_RMQ="$BASE/rabbitmq-home"

node_env() { # node number → the environment of that RabbitMQ node
  local i=$1 dir="$BASE/rabbit$1"
  echo HOME="$HOME_RMQ" RABBITMQ_NODENAME="rabbit$i@localhost" RABBITMQ_NODE_PORT=$((5680 + i)) RABBITMQ_DIST_PORT=$((25680 + i)) \
    RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
}
ctl() { HOME="$HOME_RMQ" "$RMQ/rabbitmqctl" -n "rabbit$1@localhost" "${@:2}"; }

start() {
  [ -x "$RMQ/rabbitmq-server" ] || { echo "rabbitmq-server is not installed (apt-get install rabbitmq-server)"; exit 1; }
  mkdir -p "$BASE" "$HOME_RMQ"
  [ -f "$HOME_RMQ/.erlang.cookie" ] || { openssl rand -hex 20 > "$HOME_RMQ/.erlang.cookie"; chmod 400 "$HOME_RMQ/.erlang.cookie"; }
  for i in 1 2 3; do
    mkdir -p "$BASE/rabbit$i"
    sed -e "s/^listeners.tcp.default = .*/listeners.tcp.default = 127.0.0.1:$((5680 + i))/" \
        -e "s/^mqtt.listeners.tcp.default = .*/mqtt.listeners.tcp.default = $((1890 + i))/" \
        -e "s/^management.tcp.port = .*/management.tcp.port = $((15680 + i))/" \
        -e "s/SECRET/$SECRET/; s/HUB:8080/127.0.0.1:8081/" deploy/rabbitmq/rabbitmq.conf > "$BASE/rabbit$i/rabbitmq.conf"
    cp deploy/rabbitmq/enabled_plugins deploy/rabbitmq/advanced.config "$BASE/rabbit$i/"
    echo "starting RabbitMQ node rabbit$i@localhost"
    env $(node_env $i) "$RMQ/rabbitmq-server" > "$BASE/rabbit$i/console.log" 2>&1 &
  done
  # await_startup answers at once "not running" until the node has registered with epmd: ask again until it is up.
  for i in 1 2 3; do
    for _ in $(seq 1 60); do ctl $i await_startup --timeout 120 >/dev/null 2>&1 && break; sleep 1; done
    ctl $i await_startup --timeout 5 >/dev/null || { echo "RabbitMQ node rabbit$i did not start: see $BASE/rabbit$i/console.log"; exit 1; }
  done
  for i in 2 3; do
    if ! ctl $i cluster_status 2>/dev/null | grep -q rabbit1@localhost; then
      ctl $i stop_app >/dev/null && ctl $i join_cluster rabbit1@localhost >/dev/null && ctl $i start_app >/dev/null
    fi
  done
  echo "RabbitMQ cluster: $(ctl 1 cluster_status --formatter json | grep -o '"running_nodes":\[[^]]*\]')"

  export PGPASSWORD
  psql -h 127.0.0.1 -U "$PGUSER" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'iothub_cluster'" | grep -q 1 ||
    psql -h 127.0.0.1 -U "$PGUSER" -d postgres -qc "CREATE DATABASE iothub_cluster"

  dotnet publish src/IoTHub -c Release -o "$BASE/iothub" >/dev/null
  for n in 1 2; do
    IOTHUB_Broker__Mode=RabbitMq IOTHUB_Storage__Provider=Postgres \
    IOTHUB_ConnectionStrings__Postgres="Host=127.0.0.1;Database=iothub_cluster;Username=$PGUSER;Password=$PGPASSWORD" \
    IOTHUB_ConnectionStrings__RabbitMq="amqp://iothub:$SECRET@127.0.0.1:5681/,amqp://iothub:$SECRET@127.0.0.1:5682/,amqp://iothub:$SECRET@127.0.0.1:5683/" \
    IOTHUB_RabbitMq__ManagementUri="http://iothub:$SECRET@127.0.0.1:15681" IOTHUB_Bootstrap__AdminPassword="$ADMIN_PASSWORD" \
    IOTHUB_DataDirectory="$BASE/hub$n" IOTHUB_Coap__Port=$((5690 + n)) IOTHUB_Coap__DtlsPort=$((5695 + n)) \
      "$BASE/iothub/IoTHub" --urls "http://127.0.0.1:$((8080 + n))" > "$BASE/hub$n.log" 2>&1 &
    echo $! > "$BASE/hub$n.pid"
    for _ in $(seq 1 60); do curl -fs "http://127.0.0.1:$((8080 + n))/health/ready" >/dev/null && break; sleep 1; done
    curl -fs "http://127.0.0.1:$((8080 + n))/health/ready" >/dev/null || { echo "IoTHub node $n did not start: see $BASE/hub$n.log"; exit 1; }
    echo "IoTHub node $n: http://127.0.0.1:$((8080 + n)) (log $BASE/hub$n.log)"
  done
  cat <<EOF

Ready. Create a device on either IoTHub node and publish through any RabbitMQ node (MQTT ports 1891-1893):
  ADMIN=\$(curl -s -X POST http://127.0.0.1:8081/api/v1/auth/token -H 'Content-Type: application/json' \\
    -d '{"username":"admin","password":"$ADMIN_PASSWORD"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
  TOKEN=\$(curl -s -X POST http://127.0.0.1:8082/api/v1/devices -H "Authorization: Bearer \$ADMIN" \\
    -H 'Content-Type: application/json' -d '{"id":"sensor-1"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
  mosquitto_pub -p 1892 -q 1 -i sensor-1 -u sensor-1 -P "\$TOKEN" -t devices/sensor-1/telemetry -m '{"temperature": 21.5}'
  curl -s http://127.0.0.1:8081/api/v1/devices/sensor-1/telemetry/latest -H "Authorization: Bearer \$ADMIN"
EOF
}

stop() {
  for n in 1 2; do [ -f "$BASE/hub$n.pid" ] && kill "$(cat "$BASE/hub$n.pid")" 2>/dev/null || true; rm -f "$BASE/hub$n.pid"; done
  for i in 3 2 1; do ctl $i stop >/dev/null 2>&1 || true; done
  echo "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  clean) stop; rm -rf "$BASE" ;;
  *) echo "usage: $0 start|stop|clean"; exit 2 ;;
esac
