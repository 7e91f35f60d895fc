#!/usr/bin/env bash
# Run the walkthrough on localhost: a blue myapp, a green (V2, HTML) myapp, and
# sillyproxy on :8080 splitting 4:1 between them.  Ctrl-C stops all three.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
twistd="$root/.venv/bin/twistd"
proxy_port=${PROXY_PORT:-8080}
blue_port=${BLUE_PORT:-8081}
green_port=${GREEN_PORT:-8082}
admin_port=${ADMIN_PORT:-9901}
logs=$(mktemp -d)
pids=()

stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped; logs are in $logs"
}
trap stop EXIT
trap 'exit 0' INT TERM

cd "$logs"
"$twistd" --nodaemon --pidfile= --logfile=blue.log myapp --listen "tcp:$blue_port:interface=127.0.0.1" &
pids+=($!)
V2=1 "$twistd" --nodaemon --pidfile= --logfile=green.log myapp --listen "tcp:$green_port:interface=127.0.0.1" &
pids+=($!)
BLUE="http://127.0.0.1:$blue_port" GREEN="http://127.0.0.1:$green_port/" BLUE_WEIGHT=4 GREEN_WEIGHT=1 \
  SILLYPROXY_ADMIN_LISTEN="tcp:$admin_port:interface=127.0.0.1" \
  "$twistd" --nodaemon --pidfile= --logfile=- sillyproxy --listen "tcp:$proxy_port:interface=127.0.0.1" &
pids+=($!)

for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$proxy_port") 2>/dev/null; then break; fi
  sleep 0.1
done
cat <<MSG

sillyproxy is on http://127.0.0.1:$proxy_port, 4 parts blue (plain text) to 1 part green (HTML).
Try:
  curl http://127.0.0.1:$proxy_port/
  for i in \$(seq 10); do curl -s http://127.0.0.1:$proxy_port/; done
The backends directly (Color unknown): curl http://127.0.0.1:$blue_port/  curl http://127.0.0.1:$green_port/
Metrics and status: curl http://127.0.0.1:$admin_port/metrics  curl http://127.0.0.1:$admin_port/status
Press Ctrl-C to stop. Backend logs: $logs

MSG
wait
