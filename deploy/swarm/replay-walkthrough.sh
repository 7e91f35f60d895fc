#!/usr/bin/env bash
# Replay the user's Swarm walkthrough against the sillyproxy image on one node.
#
# Written for a node without IPVS (no VIPs, no ingress mesh), so services use
# endpoint_mode dnsrr and host-mode published ports; on a full Swarm the
# README's plain commands do the same.  Needs the image: docker build -t sillyproxy .
# Talks only to 127.0.0.1; removes its services and network at the end.
set -euo pipefail
IMAGE=${IMAGE:-sillyproxy}
PORT=${PORT:-28080}
NET=sp-walkthrough
say() { printf '\n== %s\n' "$*"; }
wait_for() { # service, expected running tasks
  for _ in $(seq 60); do
    n=$(docker service ps "$1" --filter desired-state=running --format '{{.CurrentState}}' | grep -c '^Running' || true)
    [ "$n" -ge "$2" ] && return 0
    sleep 1
  done
  echo "service $1 did not reach $2 running tasks" >&2; docker service ps --no-trunc "$1" >&2; return 1
}
# Wait until every proxy task runs the spec's current environment.
wait_converged() {
  for _ in $(seq 90); do
    state=$(docker service inspect proxy --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}')
    case "$state" in ""|completed|rollback_completed) sleep 2; return 0;; esac
    sleep 1
  done
  echo "proxy update did not finish: $state" >&2; return 1
}
sample() { # n requests; tally "colour format host"
  for _ in $(seq "$1"); do
    curl -s --max-time 5 "http://127.0.0.1:$PORT/" \
      | sed -E 's/^<h1>([^ ]+) \((.*)\)<\/h1>$/\2 html \1/; t; s/^([a-z]+) (.*)$/\1 text \2/'
  done | sort | uniq -c
}
cleanup() {
  docker service rm proxy myapp-v1 myapp-v2 >/dev/null 2>&1 || true
  sleep 3
  docker network rm "$NET" >/dev/null 2>&1 || true
}
trap cleanup EXIT

docker info --format '{{.Swarm.LocalNodeState}}' | grep -qx active \
  || docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >/dev/null
docker network create --driver overlay "$NET" >/dev/null

say "myapp-v1 (4 replicas) and the proxy pointing at it"
docker service create -q --name myapp-v1 --network "$NET" --endpoint-mode dnsrr --replicas 4 "$IMAGE" myapp >/dev/null
docker service create -q --name proxy --network "$NET" --endpoint-mode dnsrr \
  --publish "mode=host,published=$PORT,target=8080" \
  -e BLUE=http://myapp-v1:8080 "$IMAGE" >/dev/null
wait_for myapp-v1 4; wait_for proxy 1; sleep 2
sample 10

say "myapp-v2 (V2=1) and a 1:4 canary, by rolling the proxy"
docker service create -q --name myapp-v2 --network "$NET" --endpoint-mode dnsrr -e V2=1 "$IMAGE" myapp >/dev/null
wait_for myapp-v2 1
docker service update -q --env-add GREEN=http://myapp-v2:8080/ --env-add GREEN_WEIGHT=1 --env-add BLUE_WEIGHT=4 proxy >/dev/null
wait_converged
sample 50

say "a typo in a weight: the new task refuses to start and Swarm rolls back"
docker service update -q --update-failure-action rollback --update-monitor 5s \
  --env-add GREEN_WEIGHT=l proxy >/dev/null 2>&1 || true
wait_converged
docker service logs --raw proxy 2>&1 | grep -m1 -A1 "invalid configuration" || true
sample 10

say "all green"
docker service scale myapp-v2=4 >/dev/null; wait_for myapp-v2 4
docker service update -q --env-rm GREEN_WEIGHT --env-rm BLUE_WEIGHT --env-rm BLUE proxy >/dev/null
wait_converged
sample 10

say "rollback to blue"
docker service update -q --env-rm GREEN --env-add BLUE=http://myapp-v1:8080 proxy >/dev/null
wait_converged
sample 10
