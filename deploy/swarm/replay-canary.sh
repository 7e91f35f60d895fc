#!/usr/bin/env bash
# Replay a canary ramp and an automatic rollback on one Swarm node.
#
#   (a) myapp v1 as blue and v2 (V2=1) as green, and a proxy that ramps green
#       through GREEN_RAMP=10,50,100, one step every STEP seconds from a
#       GREEN_RAMP_START a little in the future.  During each step it sends
#       N requests and prints a table: step, the green share expected, the
#       green answers counted, and whether that is within a generous binomial
#       tolerance.
#   (b) a good proxy configuration (blue and green 1:1), then a rolling update
#       that points GREEN at a myapp answering every request 500
#       (MYAPP_ERROR_RATE=1) with GREEN_ROLLBACK_ERROR_RATE=0.2,
#       SILLYPROXY_ANALYSIS_MIN_REQUESTS=20 and SILLYPROXY_ROLLBACK_HEALTHZ=1.
#       Traffic makes the new proxy task roll green back (the next requests go
#       to blue, /status says so) and its /healthz answer 503; the image's
#       HEALTHCHECK marks the task unhealthy inside the update's monitor period,
#       and Swarm (failure_action: rollback) restores the previous spec.
#
# Written for a node without IPVS (no VIPs, no ingress mesh), like
# replay-walkthrough.sh: dnsrr services and host-mode published ports, so the
# proxy's updates are stop-first.  Needs the image: docker build -t sillyproxy .
#
# It never hangs: every service change is --detach, followed by a wait of its
# own with a deadline, and every docker command has a timeout.  It talks only
# to 127.0.0.1, creates only the canary-* services and the sp-canary network
# and removes them at the end, prints PASS/FAIL per check, and its last line
# is "OK: ..." or "FAILED: <step>: <what>" (exit status 0 or 1).  About 3.5 min.
set -uo pipefail

PORT=${PORT:-28180}             # host port of the proxy's traffic listener (host mode)
ADMIN_PORT=${ADMIN_PORT:-28181} # host port of its admin listener (/status, /healthz)
IMAGE=${IMAGE:-sillyproxy}
N=${N:-100}                     # requests per ramp step
STEP=${STEP:-20}                # seconds per ramp step
LEAD=${LEAD:-30}                # seconds from creating the proxy to the ramp's start
RAMP=10,50,100
MONITOR=${MONITOR:-60s}         # the proxy's update monitor period, as in the stack files
NET=sp-canary
PROXY=canary-proxy
SERVICES=(canary-proxy canary-v1 canary-v2 canary-v3)
WAIT=${WAIT:-150}               # seconds any one wait may take
DOCKER_TIMEOUT=60               # seconds any one docker command may take

step="setup"
failure=""
results=()
created=()      # the services this run created: the only ones it removes
net_created=0

say() { step=$*; printf '\n== %s\n' "$*"; }
# Record what failed; the EXIT trap prints it as the last line.  Call it only
# from the main shell, never inside $(...).
fail() { failure=$*; results+=("FAIL  $step: $*"); exit 1; }
# A check that does not stop the replay: PASS or FAIL, summarised at the end.
check() { # description, then a command that succeeds if it holds
  local what=$1
  shift
  if "$@"; then results+=("PASS  $what"); echo "   PASS  $what"; else results+=("FAIL  $what"); echo "   FAIL  $what"; fi
}
dk() { timeout "$DOCKER_TIMEOUT" docker "$@"; }
# A docker command whose output is not wanted: its errors still show, but
# not the CLI's warning that a local image "could not be accessed on a
# registry to record its digest" (harmless on one node).
quiet() {
  local errors status
  errors=$(dk "$@" 2>&1 >/dev/null)
  status=$?
  grep -v -e 'could not be accessed on a registry' -e 'its digest. Each node' -e 'possibly leading to different' \
    -e 'versions of the image' -e '^$' <<<"$errors" >&2
  return $status
}

# The proxy's admin /status, and one value from it: json EXPRESSION, where d
# is the parsed document ("" if the request or the expression fails).
status=""
get_status() { status=$(curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/status") || status=""; }
json() {
  python3 -c '
import json, sys
try:
    d = json.loads(sys.stdin.read())
    value = eval(sys.argv[1])
except Exception:
    value = ""
print(json.dumps(value) if isinstance(value, (bool, dict, list)) or value is None else value)
' "$1" <<<"$status"
}

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

update_started() { dk service inspect "$PROXY" --format '{{with .UpdateStatus}}{{.StartedAt.UnixNano}}{{end}}'; }

# Wait until an update that started after `before` has ended in one of the
# expected states (the previous update's "completed" must not count).
wait_update() { # before, expected states (regex)
  local deadline=$((SECONDS + WAIT)) line="" state started message seen=""
  while ((SECONDS < deadline)); do
    line=$(dk service inspect "$PROXY" --format '{{with .UpdateStatus}}{{.State}} {{.StartedAt.UnixNano}} {{.Message}}{{end}}') || line=""
    read -r state started message <<<"$line"
    if [ -n "${started:-}" ] && [ "$started" != "$1" ]; then
      # Each state the update goes through, with Swarm's message.
      [ "$state $message" != "$seen" ] && echo "   update: $state: $message"
      seen="$state $message"
      case $state in
        updating | rollback_started) ;;
        *) [[ $state =~ ^($2)$ ]] && return 0; fail "proxy update ended '$state', expected '$2'" ;;
      esac
    fi
    sleep 1
  done
  fail "proxy update did not end within ${WAIT}s (last status: ${line:-none})"
}

# One request: its colour (from myapp's answer: "blue <host>",
# "<h1><host> (green)</h1>", or the injected "green <host>: injected error
# ...") and its status code; "error 000" if the request failed, "other CODE"
# for any other answer (such as the proxy's own 502 or 503).
one() {
  local out body code text='^(blue|green) ' html='^<h1>.* \((blue|green)\)</h1>$'
  out=$(curl -s --max-time 5 -w '\n%{http_code}' "http://127.0.0.1:$PORT/") || { echo "error 000"; return; }
  code=${out##*$'\n'}
  body=${out%$'\n'*}
  body=${body%%$'\n'*}
  if [[ $body =~ $text ]] || [[ $body =~ $html ]]; then echo "${BASH_REMATCH[1]} $code"; else echo "other $code"; fi
}

# Wait until the proxy answers a request with a colour; that answer is left
# in $first (it counts in the proxy's numbers too).
first=""
wait_serving() {
  local deadline=$((SECONDS + WAIT))
  while ((SECONDS < deadline)); do
    first=$(one)
    case $first in blue* | green*) return 0 ;; esac
    sleep 1
  done
  fail "the proxy on 127.0.0.1:$PORT did not serve within ${WAIT}s"
}

# n requests; leaves one "colour code" line per request in $answers.
answers=""
send() { answers=$(for _ in $(seq "$1"); do one; done); }
count() { grep -c "^$1" <<<"$answers"; } # count "green" or "green 500"

# The bounds a count of n draws at p percent stays within, generously:
# n p +- (4 standard deviations + 2), exact when p is 0 or 100.
bounds() { # n, percent
  awk -v n="$1" -v p="$2" 'BEGIN {
    q = p / 100; sd = sqrt(n * q * (1 - q)); slack = (q > 0 && q < 1) ? 4 * sd + 2 : 0
    lo = n * q - slack; hi = n * q + slack
    if (lo < 0) lo = 0; if (hi > n) hi = n
    printf "%d %d\n", int(lo), (hi == int(hi)) ? hi : int(hi) + 1
  }'
}

leftovers() {
  local service
  for service in "${created[@]}"; do
    dk ps -aq --filter "label=com.docker.swarm.service.name=$service"
  done
}
cleanup() {
  local service
  for service in "${created[@]}"; do
    dk service rm "$service" >/dev/null 2>&1
  done
  ((net_created)) || return 0
  local deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)) && [ -n "$(leftovers)" ]; do sleep 2; done
  while ((SECONDS < deadline)); do
    dk network inspect "$NET" >/dev/null 2>&1 || return 0
    dk network rm "$NET" >/dev/null 2>&1
    sleep 2
  done
  echo "cleanup: containers or network $NET still there after 60s" >&2
}
finish() {
  local status=$? line failed=0
  trap - EXIT INT TERM
  cleanup
  printf '\n== summary\n'
  for line in "${results[@]}"; do
    echo "$line"
    [[ $line == FAIL* ]] && failed=$((failed + 1))
  done
  if [ -z "$failure" ] && [ "$status" -ne 0 ]; then failure="exited with status $status"; fi
  if [ -z "$failure" ] && [ "$failed" -gt 0 ]; then step="checks"; failure="$failed check(s) failed"; fi
  if [ -z "$failure" ]; then
    echo "OK: canary replayed on 127.0.0.1:$PORT in ${SECONDS}s: green ramped $RAMP, a failing green rolled back by the proxy and by Swarm"
    exit 0
  fi
  echo "FAILED: $step: $failure"
  exit 1
}
trap finish EXIT
trap 'failure="interrupted"; exit 130' INT TERM

say "setup"
command -v python3 >/dev/null || fail "python3 is needed to read /status"
dk info >/dev/null 2>&1 || fail "no Docker daemon answers"
dk image inspect "$IMAGE" >/dev/null 2>&1 || fail "no image $IMAGE (docker build -t $IMAGE .)"
for port in "$PORT" "$ADMIN_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then fail "something already listens on 127.0.0.1:$port"; fi
done
if [ "$(dk info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
  dk swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >/dev/null || fail "docker swarm init failed"
fi
for service in "${SERVICES[@]}"; do
  dk service inspect "$service" >/dev/null 2>&1 && fail "a service $service already exists (another replay running?)"
done
# None of them existed, so from here on any of them is this run's to remove.
created=("${SERVICES[@]}")
dk network inspect "$NET" >/dev/null 2>&1 && fail "a network $NET already exists (another replay running?)"
dk network create --driver overlay "$NET" >/dev/null || fail "could not create network $NET"
net_created=1

say "(a) myapp v1 as blue, v2 as green, and a proxy ramping green $RAMP"
quiet service create --detach --name canary-v1 --network "$NET" --endpoint-mode dnsrr --replicas 2 \
  "$IMAGE" myapp || fail "could not create canary-v1"
quiet service create --detach --name canary-v2 --network "$NET" --endpoint-mode dnsrr --replicas 2 \
  -e V2=1 "$IMAGE" myapp || fail "could not create canary-v2"
wait_running canary-v1 2
wait_running canary-v2 2
start=$(date -u -d "@$(($(date +%s) + LEAD))" +%Y-%m-%dT%H:%M:%SZ)
echo "   GREEN_RAMP=$RAMP GREEN_RAMP_START=$start GREEN_RAMP_STEP=${STEP}s"
# Host-mode ports: one task may hold them, so updates and rollbacks stop the
# old task first.  The monitor period and the CPU limit are the stack files'
# (see (b)); with one CPU, the image's SILLYPROXY_WORKERS=auto runs one process.
quiet service create --detach --name "$PROXY" --network "$NET" --endpoint-mode dnsrr \
  --limit-cpu 1 \
  --publish "mode=host,published=$PORT,target=8080" \
  --publish "mode=host,published=$ADMIN_PORT,target=9901" \
  --update-order stop-first --update-failure-action rollback --update-monitor "$MONITOR" \
  --rollback-order stop-first --stop-grace-period 15s \
  -e BLUE=http://canary-v1:8080 -e GREEN=http://canary-v2:8080/ \
  -e GREEN_RAMP="$RAMP" -e GREEN_RAMP_START="$start" -e GREEN_RAMP_STEP="${STEP}s" \
  -e SILLYPROXY_DRAIN_TIMEOUT=8 -e SILLYPROXY_DNS_REFRESH=5 \
  "$IMAGE" || fail "could not create $PROXY"
wait_running "$PROXY" 1
wait_serving
get_status
# A supervisor's /status lists its workers; one process's has no such field.
check "(a) the image's SILLYPROXY_WORKERS=auto under --limit-cpu 1: one process, no supervisor" \
  test "$(json '"workers" not in d')" = true

IFS=, read -r -a percents <<<"$RAMP"
steps=${#percents[@]}
table=("step  expected green %  green / sent  blue  other  bounds    verdict")
ramp_ok=1
for ((k = 0; k <= steps; k++)); do
  expected=0
  ((k > 0)) && expected=${percents[k - 1]}
  # Wait for the step (the proxy's /status says which), unless it is past.
  deadline=$((SECONDS + LEAD + steps * STEP + 30))
  now=""
  while ((SECONDS < deadline)); do
    get_status
    now=$(json 'd["colors"]["green"]["ramp"]["step"]')
    [[ $now =~ ^[0-9]+$ ]] && ((now >= k)) && break
    sleep 0.5
  done
  [[ $now =~ ^[0-9]+$ ]] || fail "no ramp step in /status (got: ${status:0:300})"
  if ((now > k)); then
    echo "   step $k passed before it could be sampled (/status says step $now)"
    ((k == 0)) && continue
    ramp_ok=0
    table+=("$(printf '%-5s %-17s %-13s %-5s %-6s %s' "$k" "$expected" "-" "-" "-" "missed")")
    continue
  fi
  said=$(json 'd["colors"]["green"]["ramp"]["percent"]')
  send "$N"
  get_status
  after=$(json 'd["colors"]["green"]["ramp"]["step"]')
  green=$(count 'green 200') blue=$(count 'blue 200')
  other=$((N - green - blue))
  read -r lo hi < <(bounds "$N" "$expected")
  verdict="ok"
  if [ "$after" != "$k" ] && ((k < steps)); then verdict="straddled step $after"; fi
  if ((green < lo || green > hi || other > 0)); then verdict="OUT"; fi
  awk -v a="$said" -v b="$expected" 'BEGIN { exit !(a + 0 == b + 0) }' || verdict="/status says $said %"
  [ "$verdict" = ok ] || ramp_ok=0
  table+=("$(printf '%-5s %-17s %-13s %-5s %-6s %-9s %s' "$k" "$expected" "$green / $N" "$blue" "$other" "$lo-$hi" "$verdict")")
  echo "   step $k: $green green of $N (expected ${expected} %, bounds $lo-$hi): $verdict"
done
printf '\n'
printf '   %s\n' "${table[@]}"
check "(a) each ramp step's green count within its bounds, every answer 200 from a colour" test "$ramp_ok" -eq 1
get_status
check "(a) /status: green's ramp at its last step ($steps of $steps, ${percents[steps - 1]} %)" \
  test "$(json "d['colors']['green']['ramp']['step'] == d['colors']['green']['ramp']['steps'] == $steps and float(d['colors']['green']['ramp']['percent']) == ${percents[steps - 1]}")" = true

say "(b) a good proxy configuration: blue and green 1:1, no ramp"
quiet service create --detach --name canary-v3 --network "$NET" --endpoint-mode dnsrr \
  -e V2=1 -e MYAPP_ERROR_RATE=1 "$IMAGE" myapp \
  || fail "could not create canary-v3"
# Its HEALTHCHECK asks /healthz, which MYAPP_ERROR_RATE spares: a bad
# release is alive, and it is the proxy that judges its answers.
before=$(update_started)
quiet service update --detach --env-rm GREEN_RAMP --env-rm GREEN_RAMP_START --env-rm GREEN_RAMP_STEP \
  --env-add BLUE_WEIGHT=1 --env-add GREEN_WEIGHT=1 "$PROXY" || fail "docker service update was refused"
wait_running canary-v3 1
wait_update "$before" completed
wait_running "$PROXY" 1
wait_serving
send 20
echo "   $(count blue) blue, $(count green) green of 20"
check "(b) the good configuration serves both colours, every answer 200" \
  test "$(count 'blue 200')" -ge 1 -a "$(count 'green 200')" -ge 1 -a "$(($(count 'blue 200') + $(count 'green 200')))" -eq 20

say "(b) roll out a failing green (every request 500) with automatic rollback on"
before=$(update_started)
quiet service update --detach --env-add GREEN=http://canary-v3:8080/ --env-add GREEN_ROLLBACK_ERROR_RATE=0.2 \
  --env-add SILLYPROXY_ANALYSIS_MIN_REQUESTS=20 --env-add SILLYPROXY_ROLLBACK_HEALTHZ=1 "$PROXY" \
  || fail "docker service update was refused"
# The new task is the one whose /status names canary-v3.
deadline=$((SECONDS + WAIT))
while ((SECONDS < deadline)); do
  get_status
  [[ $(json 'd["colors"]["green"]["url"]') == *canary-v3* ]] && break
  sleep 0.5
done
[[ $(json 'd["colors"]["green"]["url"]') == *canary-v3* ]] || fail "no proxy task with GREEN=canary-v3 answered /status within ${WAIT}s"
t0=$SECONDS
green_of() { python3 -c 'import json, sys; print(" ".join(e for e in json.loads(sys.argv[1] or "[]") if e.startswith("GREEN")))' "$1"; }
echo "   during the update: Spec $(green_of "$(dk service inspect "$PROXY" --format '{{json .Spec.TaskTemplate.ContainerSpec.Env}}')")"
echo "                      PreviousSpec $(green_of "$(dk service inspect "$PROXY" --format '{{with .PreviousSpec}}{{json .TaskTemplate.ContainerSpec.Env}}{{end}}')")"
wait_serving
# Requests one at a time until green has answered 20 (the proxy's minimum
# before it judges), at most 200; the first is the one that found the new
# task serving.  Then 40 more, which should all go to blue.
answers=$first
sent=1
while ((sent < 200)) && [ "$(count green)" -lt 20 ]; do
  answers+=$'\n'$(one)
  sent=$((sent + 1))
done
before_rollback=$answers
echo "   until green's 20th answer: $sent requests, $(count 'green 500') green 500, $(count 'green 200') green 200, $(count 'blue 200') blue 200, $(($(count other) + $(count error))) other"
send 40
after_rollback=$answers
echo "   then 40 more: $(count 'blue 200') blue 200, $(count green) green, $(($(count other) + $(count error))) other"
get_status
rolled_back=$(json 'd["colors"]["green"]["rolled_back"]')
reason=$(json 'd["colors"]["green"]["rollback_reason"]')
green_requests=$(json 'd["colors"]["green"]["requests"]')
echo "   /status: green rolled_back=$rolled_back, share $(json 'd["colors"]["green"]["share"]'), requests $green_requests"
echo "            rollback_reason: $reason"
answers=$before_rollback
check "(b) green answered 500 until rolled back: $(count 'green 500') requests of $sent (the proxy counted $green_requests), SILLYPROXY_ANALYSIS_MIN_REQUESTS (20) and no more" \
  test "$(count 'green 500')" -eq 20 -a "$green_requests" = 20 -a "$(count 'green 200')" -eq 0 -a "$(count 'blue 200')" -eq $((sent - 20))
answers=$after_rollback
check "(b) after the rollback every request went to blue: $(count 'blue 200') of 40" test "$(count 'blue 200')" -eq 40
check "(b) /status: colors.green.rolled_back is true" test "$rolled_back" = true
healthz=$(curl -s --max-time 5 -w '\n%{http_code}' "http://127.0.0.1:$ADMIN_PORT/healthz")
healthz_code=${healthz##*$'\n'} healthz_body=${healthz%$'\n'*}
healthz_body=${healthz_body%$'\n'}
echo "   /healthz: $healthz_code $healthz_body"
check "(b) /healthz answers 503 'rolled back: green'" test "$healthz_code" = 503 -a "$healthz_body" = "rolled back: green"

say "(b) Swarm sees the task unhealthy and rolls the proxy back"
wait_update "$before" rollback_completed
echo "   rollback completed $((SECONDS - t0)) s after the new task first answered"
echo "   UpdateStatus: $(dk service inspect "$PROXY" --format '{{json .UpdateStatus}}')"
env=$(dk service inspect "$PROXY" --format '{{json .Spec.TaskTemplate.ContainerSpec.Env}}')
previous=$(dk service inspect "$PROXY" --format '{{with .PreviousSpec}}{{json .TaskTemplate.ContainerSpec.Env}}{{end}}')
echo "   after the rollback: Spec $(green_of "$env")"
echo "                       PreviousSpec ${previous:-(none: Swarm clears it on a rollback)}"
check "(b) docker service inspect: UpdateStatus.State rollback_completed, the spec's GREEN the good one again" \
  test -n "$(grep -F '"GREEN=http://canary-v2:8080/"' <<<"$env")" -a -z "$(grep -F 'GREEN_ROLLBACK_ERROR_RATE' <<<"$env")"
# Why Swarm failed the task: the HEALTHCHECK's last output, kept in the
# failed task's container (Swarm keeps a few old tasks' containers).
for container in $(dk ps -aq --filter "label=com.docker.swarm.service.name=$PROXY"); do
  dk inspect "$container" --format '{{range .Config.Env}}{{println .}}{{end}}' | grep -q '^GREEN=http://canary-v3' || continue
  dk inspect "$container" --format '{{json .State}}' | python3 -c '
import json, sys
state = json.load(sys.stdin)
health = state.get("Health") or {}
log = health.get("Log") or [{}]
print("   the failed task'"'"'s container: %s, health %s, last probe: %s"
      % (state.get("Status"), health.get("Status"), (log[-1].get("Output") or "").strip()))'
done
# The failed task, as Swarm recorded it.
for task in $(dk service ps -q --no-trunc "$PROXY"); do
  dk inspect "$task" --format '{{range .Spec.ContainerSpec.Env}}{{println .}}{{end}}' | grep -q '^GREEN=http://canary-v3' || continue
  echo "   the failed task: $(dk inspect "$task" --format 'desired {{.DesiredState}}, state {{.Status.State}} ({{.Status.Message}}){{with .Status.Err}}, error: {{.}}{{end}}')"
done
wait_running "$PROXY" 1
wait_serving
get_status
send 20
echo "   after Swarm's rollback: $(count 'blue 200') blue, $(count 'green 200') green of 20; green rolled_back=$(json 'd["colors"]["green"]["rolled_back"]')"
check "(b) the restored proxy serves blue and the good green again, every answer 200" \
  test "$(($(count 'blue 200') + $(count 'green 200')))" -eq 20 -a "$(count 'green 200')" -ge 1
