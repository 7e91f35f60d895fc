#!/usr/bin/env bash
# Replay the user's Swarm walkthrough against the sillyproxy image on one node.
#
# Written for a node without IPVS (no VIPs, no ingress mesh), so services use
# endpoint_mode dnsrr and a host-mode published port; on a full Swarm the
# README's plain commands do the same.  Needs the image: docker build -t sillyproxy .
#
# It never hangs: every service change is --detach, followed by a wait of its
# own with a deadline, and every docker command has a timeout.  It talks only
# to 127.0.0.1, removes its services and network at the end, and its last line
# is "OK: ..." or "FAILED: <step>: <what>" (exit status 0 or 1).
set -uo pipefail

PORT=${PORT:-28080}             # host port the proxy is published on (host mode)
IMAGE=${IMAGE:-sillyproxy}
NET=sp-walkthrough
WAIT=${WAIT:-120}               # seconds any one wait may take
DOCKER_TIMEOUT=60               # seconds any one docker command may take

step="setup"
failure=""

say() { step=$*; printf '\n== %s\n' "$*"; }
# Record what failed; the EXIT trap prints it as the last line.  Call it only
# from the main shell, never inside $(...).
fail() { failure=$*; exit 1; }
dk() { timeout "$DOCKER_TIMEOUT" docker "$@"; }

# Wait until the service has n tasks running and nothing else meant to run.
wait_running() { # service, n
  local deadline=$((SECONDS + WAIT)) states running
  while ((SECONDS < deadline)); do
    states=$(dk service ps "$1" --filter desired-state=running --format '{{.CurrentState}}') || states=""
    running=$(grep -c '^Running' <<<"$states")
    [ "$running" -eq "$2" ] && [ "$(grep -vc '^Running' <<<"$states")" -eq 0 ] && return 0
    sleep 1
  done
  dk service ps --no-trunc "$1" >&2
  fail "service $1 did not reach $2 running tasks within ${WAIT}s"
}

# When the proxy's last update started (empty before the first one).
update_started() { dk service inspect proxy --format '{{with .UpdateStatus}}{{.StartedAt.UnixNano}}{{end}}'; }

# Wait until an update that started after `before` has ended in one of the
# expected states (the previous update's "completed" must not count).
wait_update() { # before, expected states (regex)
  local deadline=$((SECONDS + WAIT)) status="" state started
  while ((SECONDS < deadline)); do
    status=$(dk service inspect proxy --format '{{with .UpdateStatus}}{{.State}} {{.StartedAt.UnixNano}}{{end}}') || status=""
    read -r state started <<<"$status"
    if [ -n "${started:-}" ] && [ "$started" != "$1" ]; then
      case $state in
        updating | rollback_started) ;;
        *) [[ $state =~ ^($2)$ ]] && return 0; fail "proxy update ended '$state', expected '$2'" ;;
      esac
    fi
    sleep 1
  done
  fail "proxy update did not end within ${WAIT}s (last status: ${status:-none})"
}

# One request's colour, from myapp's answer ("blue <host>" or
# "<h1><host> (green)</h1>"); "error" if the request failed, "other" for any
# other answer (such as the proxy's own 502 or 503).
colour_of_one() {
  local body text='^(blue|green) ' html='^<h1>.* \((blue|green)\)</h1>$'
  body=$(curl -s --max-time 5 "http://127.0.0.1:$PORT/") || { echo error; return; }
  if [[ $body =~ $text ]] || [[ $body =~ $html ]]; then echo "${BASH_REMATCH[1]}"; else echo other; fi
}

# Wait until the proxy answers a request with a colour.
wait_serving() {
  local deadline=$((SECONDS + WAIT))
  while ((SECONDS < deadline)); do
    case $(colour_of_one) in blue | green) return 0 ;; esac
    sleep 1
  done
  fail "the proxy on 127.0.0.1:$PORT did not serve within ${WAIT}s"
}

# n requests; prints a tally and leaves "colour count" lines in $tally.
tally=""
sample() {
  tally=$(for _ in $(seq "$1"); do colour_of_one; done | sort | uniq -c | awk '{print $2, $1}')
  sed 's/^/   /' <<<"$tally"
}
count() { awk -v c="$1" '$1 == c {n = $2} END {print n + 0}' <<<"$tally"; }

# Our services' containers (docker service rm returns before they are gone).
leftovers() {
  local service
  for service in proxy myapp-v1 myapp-v2; do
    dk ps -aq --filter "label=com.docker.swarm.service.name=$service"
  done
}
cleanup() {
  dk service rm proxy myapp-v1 myapp-v2 >/dev/null 2>&1
  local deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)) && [ -n "$(leftovers)" ]; do sleep 2; done
  # The network can only go once the tasks' containers have.
  while ((SECONDS < deadline)); do
    dk network inspect "$NET" >/dev/null 2>&1 || return 0
    dk network rm "$NET" >/dev/null 2>&1
    sleep 2
  done
  echo "cleanup: containers or network $NET still there after 60s" >&2
}
finish() {
  local status=$?
  trap - EXIT INT TERM
  cleanup
  if [ -z "$failure" ] && [ "$status" -ne 0 ]; then failure="exited with status $status"; fi
  if [ -z "$failure" ]; then
    echo "OK: walkthrough replayed on 127.0.0.1:$PORT: canary, typo rolled back, all green, back to blue"
    exit 0
  fi
  echo "FAILED: $step: $failure"
  exit 1
}
trap finish EXIT
trap 'failure="interrupted"; exit 130' INT TERM

say "setup"
dk info >/dev/null 2>&1 || fail "no Docker daemon answers"
dk image inspect "$IMAGE" >/dev/null 2>&1 || fail "no image $IMAGE (docker build -t $IMAGE .)"
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then fail "something already listens on 127.0.0.1:$PORT"; fi
if [ "$(dk info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
  dk swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >/dev/null || fail "docker swarm init failed"
fi
dk network create --driver overlay "$NET" >/dev/null || fail "could not create network $NET"

say "myapp-v1 (4 replicas) and the proxy pointing at it"
dk service create --detach -q --name myapp-v1 --network "$NET" --endpoint-mode dnsrr --replicas 4 \
  "$IMAGE" myapp >/dev/null || fail "could not create myapp-v1"
# A host-mode port is held by one task at a time, so updates stop the old
# task first (start-first could never place the new one), and a failed
# update rolls back after 5 s of watching.
dk service create --detach -q --name proxy --network "$NET" --endpoint-mode dnsrr \
  --publish "mode=host,published=$PORT,target=8080" \
  --update-order stop-first --update-failure-action rollback --update-monitor 5s \
  --rollback-order stop-first --stop-grace-period 15s \
  -e BLUE=http://myapp-v1:8080 "$IMAGE" >/dev/null || fail "could not create proxy"
wait_running myapp-v1 4
wait_running proxy 1
wait_serving
sample 10
[ "$(count blue)" -eq 10 ] || fail "expected 10 blue answers"

say "myapp-v2 (V2=1) and a 1:4 canary, by rolling the proxy"
dk service create --detach -q --name myapp-v2 --network "$NET" --endpoint-mode dnsrr -e V2=1 \
  "$IMAGE" myapp >/dev/null || fail "could not create myapp-v2"
wait_running myapp-v2 1
before=$(update_started)
dk service update --detach -q --env-add GREEN=http://myapp-v2:8080/ --env-add GREEN_WEIGHT=1 \
  --env-add BLUE_WEIGHT=4 proxy >/dev/null || fail "docker service update was refused"
wait_update "$before" completed
wait_running proxy 1
wait_serving
sample 50
blue=$(count blue) green=$(count green)
[ $((blue + green)) -eq 50 ] && [ "$green" -ge 1 ] && [ "$blue" -gt "$green" ] \
  || fail "expected about 40 blue and 10 green of 50, got $blue blue and $green green"

say "a typo in a weight: the new task refuses to start and Swarm rolls back"
before=$(update_started)
dk service update --detach -q --env-add GREEN_WEIGHT=l proxy >/dev/null || fail "docker service update was refused"
wait_update "$before" rollback_completed
wait_running proxy 1
# Captured first: grep stopping early would break a pipe under pipefail.
logs=$(dk service logs --raw proxy 2>&1)
grep -m1 -A1 "invalid configuration" <<<"$logs" || fail "no 'invalid configuration' in the proxy's logs"
env=$(dk service inspect proxy --format '{{json .Spec.TaskTemplate.ContainerSpec.Env}}')
[[ $env == *'"GREEN_WEIGHT=1"'* ]] || fail "the rollback did not restore GREEN_WEIGHT=1 (env: $env)"
wait_serving
sample 10
[ "$(count error)" -eq 0 ] && [ "$(count other)" -eq 0 ] || fail "expected every answer from a colour after the rollback"

say "all green"
dk service scale --detach myapp-v2=4 >/dev/null || fail "docker service scale was refused"
wait_running myapp-v2 4
before=$(update_started)
dk service update --detach -q --env-rm GREEN_WEIGHT --env-rm BLUE_WEIGHT --env-rm BLUE proxy >/dev/null \
  || fail "docker service update was refused"
wait_update "$before" completed
wait_running proxy 1
wait_serving
sample 10
[ "$(count green)" -eq 10 ] || fail "expected 10 green answers"

say "rollback to blue"
before=$(update_started)
dk service update --detach -q --env-rm GREEN --env-add BLUE=http://myapp-v1:8080 proxy >/dev/null \
  || fail "docker service update was refused"
wait_update "$before" completed
wait_running proxy 1
wait_serving
sample 10
[ "$(count blue)" -eq 10 ] || fail "expected 10 blue answers"
step="cleanup"
