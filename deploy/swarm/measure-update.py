#!/usr/bin/env python3
"""
What a `docker service update` of the proxy drops under steady load, with
stack-host-ports.yml (host-mode port, no IPVS), on one node.

    docker build -t sillyproxy .
    python3 deploy/swarm/measure-update.py [--port 28081] [--rate 100]

Three ways to roll the proxy, each under a client sending --rate requests a
second (a new connection each) to 127.0.0.1 only:

  stop-first   the stack's setting: the old task stops, then the new starts;
  start-first  what stack.yml uses with the ingress mesh, tried on a host port;
  two-ports    a second proxy service on PORT+1, the two updated one after
               the other, the client retrying a failed request once on the
               other port (as a balancer in front of both would).

The ingress variant (stack.yml) cannot be measured on a node without IPVS:
nothing listens on its published port there.  Every wait has a deadline;
the stack is removed at the end; the last line is "OK: ..." or "FAILED: ...".
Needs Python 3.8+ and a Docker CLI of 23.0 or later (stack files without
`version:`).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STACK_FILE = HERE / "stack-host-ports.yml"
DOCKER_TIMEOUT = 60.0
# No single run of the load may last longer than this, whatever happens.
LOAD_LIMIT = 600.0


class Failed(Exception):
    """A step that did not do what it should; the message says what."""


def docker(*args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
    """Run a docker command with a timeout; its stdout."""
    try:
        result = subprocess.run(
            ["docker", *args],
            capture_output=True,
            text=True,
            timeout=DOCKER_TIMEOUT,
            env=None if env is None else {**os.environ, **env},
        )
    except subprocess.TimeoutExpired:
        raise Failed(f"docker {' '.join(args)} took over {DOCKER_TIMEOUT:.0f}s") from None
    if check and result.returncode != 0:
        raise Failed(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def wait_until(what: str, condition, timeout: float = 180.0, interval: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise Failed(f"{what}: not within {timeout:.0f}s")


def running_tasks(service: str) -> list[str]:
    out = docker("service", "ps", service, "--filter", "desired-state=running", "--format", "{{.CurrentState}}", check=False)
    return [line for line in out.splitlines() if line.strip()]


def wait_running(service: str, count: int) -> None:
    def ready() -> bool:
        states = running_tasks(service)
        return len(states) == count and all(s.startswith("Running") for s in states)

    wait_until(f"{service} reaching {count} running task(s)", ready)


def update_status(service: str) -> tuple[str, str]:
    out = docker("service", "inspect", service, "--format", "{{json .UpdateStatus}}", check=False).strip()
    status = json.loads(out) if out and out != "null" else None
    return ("", "") if not status else (status.get("State", ""), status.get("StartedAt", ""))


def wait_update(service: str, before: str, timeout: float = 180.0) -> str:
    """Wait for an update started after `before` to end; its final state."""
    final: list[str] = []

    def ended() -> bool:
        state, started = update_status(service)
        if started and started != before and state not in ("updating", "rollback_started"):
            final.append(state)
            return True
        return False

    wait_until(f"the update of {service} ending", ended, timeout)
    return final[0]


def answers(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


class Load:
    """Steady requests, paced to `rate` a second over `workers` threads, to one or two ports."""

    def __init__(self, ports: list[int], rate: float, workers: int = 2, failover: bool = False) -> None:
        self.ports, self.failover = ports, failover
        self.interval = workers / rate
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent = self.first_try_failures = self.failures = 0
        self.kinds: dict[str, int] = {}
        self.failure_times: list[float] = []
        self.threads = [threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(workers)]
        self.started = time.monotonic()

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)

    @staticmethod
    def _one(port: int) -> str | None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/", headers={"Connection": "close"})
            response = connection.getresponse()
            response.read()
            return None if response.status == 200 else f"HTTP {response.status}"
        except (OSError, http.client.HTTPException) as e:
            return type(e).__name__
        finally:
            connection.close()

    def _work(self, index: int) -> None:
        turn = index
        next_at = time.monotonic()
        while not self.stop.is_set() and time.monotonic() - self.started < LOAD_LIMIT:
            port = self.ports[turn % len(self.ports)]
            turn += 1
            problem = self._one(port)
            first_failed = problem is not None
            if problem is not None and self.failover and len(self.ports) > 1:
                problem = self._one(self.ports[turn % len(self.ports)])
            with self.lock:
                self.sent += 1
                self.first_try_failures += first_failed
                if problem is not None:
                    self.failures += 1
                    self.kinds[problem] = self.kinds.get(problem, 0) + 1
                    self.failure_times.append(time.monotonic())
            next_at += self.interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def summary(self) -> str:
        window = max(self.failure_times) - min(self.failure_times) if self.failure_times else 0.0
        text = f"{self.sent} requests, {self.failures} failed"
        if self.failover:
            text += f" ({self.first_try_failures} failed on the first port and were retried)"
        if self.failures:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items()))
            text += f" [{kinds}], failures spread over {window:.1f}s"
        return text


def deploy(stack: str, port: int) -> None:
    docker("stack", "deploy", "-c", str(STACK_FILE), stack, env={"PROXY_PORT": str(port)})
    wait_running(f"{stack}_myapp-v1", 4)
    wait_running(f"{stack}_myapp-v2", 1)
    wait_running(f"{stack}_proxy", 1)
    wait_until(f"the proxy answering on 127.0.0.1:{port}", lambda: answers(port), 60)


def roll(service: str, *flags: str, timeout: float = 180.0) -> tuple[str, float]:
    """Update service (detached); its final update state and how long it took."""
    before = update_status(service)[1]
    started = time.monotonic()
    docker("service", "update", "--detach", "-q", *flags, service)
    state = wait_update(service, before, timeout)
    return state, time.monotonic() - started


def stop_first(stack: str, port: int, rate: float) -> str:
    with Load([port], rate) as load:
        time.sleep(3)
        state, took = roll(f"{stack}_proxy", "--env-add", "BLUE_WEIGHT=3")
        wait_running(f"{stack}_proxy", 1)
        wait_until("the proxy answering again", lambda: answers(port), 60)
        time.sleep(3)
    if state != "completed":
        raise Failed(f"the stop-first update ended '{state}'")
    return f"stop-first: update {state} in {took:.1f}s; {load.summary()}"


def start_first(stack: str, port: int, rate: float, watch: float = 45.0) -> str:
    service = f"{stack}_proxy"
    before = update_status(service)[1]
    with Load([port], rate) as load:
        time.sleep(3)
        started = time.monotonic()
        docker("service", "update", "--detach", "-q", "--update-order", "start-first", "--env-add", "BLUE_WEIGHT=2", service)
        state = ""
        while time.monotonic() - started < watch:
            state, when = update_status(service)
            if when != before and state not in ("updating", "rollback_started", ""):
                break
            time.sleep(1)
        pending = docker("service", "ps", service, "--filter", "desired-state=running", "--format", "{{.CurrentState}} {{.Error}}", check=False)
        note = "; ".join(line.strip() for line in pending.splitlines() if not line.startswith("Running")) or "none"
        verdict = f"update '{state}' after {time.monotonic() - started:.0f}s, tasks not running: {note}"
        time.sleep(2)
    # Put the stack's own setting back; this supersedes a stalled update.
    roll(service, "--update-order", "stop-first")
    wait_running(service, 1)
    return f"start-first: {verdict}; {load.summary()}"


def two_ports(stack: str, port: int, rate: float) -> str:
    second = f"{stack}_proxy-b"
    spec = json.loads(docker("service", "inspect", f"{stack}_proxy", "--format", "{{json .Spec.TaskTemplate.ContainerSpec.Env}}"))
    env_flags = [flag for item in spec for flag in ("--env", item)]
    docker(
        "service", "create", "--detach", "-q", "--name", second, "--network", f"{stack}_backend",
        "--endpoint-mode", "dnsrr", "--publish", f"mode=host,published={port + 1},target=8080",
        "--update-order", "stop-first", "--update-failure-action", "rollback", "--stop-grace-period", "15s",
        "--mode", "global", *env_flags, "sillyproxy:latest",
    )
    wait_running(second, 1)
    wait_until(f"the second proxy answering on 127.0.0.1:{port + 1}", lambda: answers(port + 1), 60)
    with Load([port, port + 1], rate, failover=True) as load:
        time.sleep(3)
        first = roll(f"{stack}_proxy", "--env-add", "BLUE_WEIGHT=5")
        wait_running(f"{stack}_proxy", 1)
        wait_until("the first proxy answering again", lambda: answers(port), 60)
        other = roll(second, "--env-add", "BLUE_WEIGHT=5")
        wait_running(second, 1)
        wait_until("the second proxy answering again", lambda: answers(port + 1), 60)
        time.sleep(3)
    if (first[0], other[0]) != ("completed", "completed"):
        raise Failed(f"the two-port updates ended '{first[0]}' and '{other[0]}'")
    return f"two-ports: updates took {first[1]:.1f}s and {other[1]:.1f}s; {load.summary()}"


def cleanup(stack: str) -> None:
    docker("service", "rm", f"{stack}_proxy-b", check=False)
    docker("stack", "rm", stack, check=False)

    def gone() -> bool:
        left = docker("ps", "-aq", "--filter", f"label=com.docker.stack.namespace={stack}", check=False).split()
        left += docker("ps", "-aq", "--filter", f"label=com.docker.swarm.service.name={stack}_proxy-b", check=False).split()
        networks = docker("network", "ls", "-q", "--filter", f"name={stack}_backend", check=False).split()
        return not left and not networks

    try:
        wait_until("the stack's containers and network going", gone, 90, 2)
    except Failed as e:
        print(f"cleanup: {e}", file=sys.stderr)


SCENARIOS = {"stop-first": stop_first, "start-first": start_first, "two-ports": two_ports}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=28081, help="host port of the proxy (the second one uses PORT+1)")
    parser.add_argument("--rate", type=float, default=100.0, help="requests a second from the client")
    parser.add_argument("--stack", default="spm")
    parser.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)} (default: all, in that order)")
    options = parser.parse_args()
    options.scenarios = options.scenarios or list(SCENARIOS)
    unknown = set(options.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    step = "setup"
    try:
        if docker("info", "--format", "{{.Swarm.LocalNodeState}}").strip() != "active":
            raise Failed("this node is not in a swarm (docker swarm init)")
        step = "deploy"
        deploy(options.stack, options.port)
        for name in options.scenarios:
            step = name
            print(SCENARIOS[name](options.stack, options.port, options.rate), flush=True)
    except Failed as e:
        cleanup(options.stack)
        print(f"FAILED: {step}: {e}")
        return 1
    except BaseException:
        cleanup(options.stack)
        raise
    cleanup(options.stack)
    print(f"OK: measured {', '.join(options.scenarios)} at {options.rate:g} requests/s on 127.0.0.1:{options.port}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
