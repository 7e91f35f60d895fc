"""End-to-end: SILLYPROXY_WORKERS=2, a supervisor and its two workers on one port, as real processes."""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from pathlib import Path

from .processes import Twistd, start_twistd


def _proxy(apps: tuple[int, int], tmp_path: Path, **environ: str) -> Twistd:
    blue, green = apps
    return start_twistd(
        "sillyproxy",
        [],
        {
            "BLUE": f"http://127.0.0.1:{blue}",
            "GREEN": f"http://127.0.0.1:{green}",
            "SILLYPROXY_WORKERS": "2",
            "SILLYPROXY_ACCESS_LOG": "off",
            **environ,
        },
        tmp_path,
    )


def _get(proxy: Twistd, count: int) -> list[int]:
    """C{count} requests, each on a new connection (so the kernel spreads them over the workers)."""
    statuses = []
    for _ in range(count):
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
        finally:
            connection.close()
    return statuses


def _counted(proxy: Twistd) -> float:
    """The requests /metrics counts, over every colour, code and method."""
    _, metrics = proxy.admin("/metrics")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.decode().splitlines()
        if line.startswith("sillyproxy_requests_total{")
    )


def _workers(proxy: Twistd, count: int, timeout: float = 15.0) -> list[dict]:  # type: ignore[type-arg]
    """The workers /status lists, once C{count} of them answer."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = proxy.admin("/status")
        workers = json.loads(body).get("workers", []) if status in (200, 503) else []
        if len(workers) == count or time.monotonic() > deadline:
            return workers  # type: ignore[no-any-return]
        time.sleep(0.1)


def test_two_workers_serve_and_are_counted_exactly(apps, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """If the proxy runs two workers, then both serve, /status lists them, and /metrics counts exactly the requests sent."""
    proxy = _proxy(apps, tmp_path)
    try:
        workers = _workers(proxy, 2)
        assert len({w["pid"] for w in workers}) == 2, workers
        assert all(w["pid"] != proxy.process.pid for w in workers)
        assert _get(proxy, 200) == [200] * 200
        workers = _workers(proxy, 2)
        assert all(w["requests"] > 0 for w in workers), workers
        assert sum(w["requests"] for w in workers) == 200
        assert _counted(proxy) == 200
        assert "sillyproxy_workers 2" in proxy.admin("/metrics")[1].decode()
        assert proxy.admin("/readyz")[0] == 200
    finally:
        assert proxy.stop() == 0


def test_a_killed_worker_is_replaced(apps, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """If a worker is killed with SIGKILL, then the proxy keeps serving and a new worker takes its place within seconds."""
    proxy = _proxy(apps, tmp_path)
    try:
        victim, survivor = (w["pid"] for w in _workers(proxy, 2))
        assert _get(proxy, 40) == [200] * 40
        assert _counted(proxy) == 40
        os.kill(victim, signal.SIGKILL)
        assert _get(proxy, 50) == [200] * 50
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pids = {w["pid"] for w in _workers(proxy, 2)}
            if len(pids) == 2 and victim not in pids:
                break
            time.sleep(0.1)
        assert survivor in pids and victim not in pids and len(pids) == 2, pids
        assert proxy.logged(f"(pid {victim}) died after")
        assert _get(proxy, 20) == [200] * 20
        # The dead worker's requests still count: the replica's counters never go back.
        assert _counted(proxy) == 110
    finally:
        proxy.stop()


def test_sigterm_drains_every_worker_and_exits_0(apps, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """If the supervisor gets SIGTERM, then every worker exits and so does the supervisor, with status 0."""
    proxy = _proxy(apps, tmp_path)
    pids = [w["pid"] for w in _workers(proxy, 2)]
    proxy.terminate()
    assert proxy.wait(30) == 0
    for pid in pids:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"worker {pid} is still running")


def test_workers_leave_when_the_supervisor_dies(apps, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """If the supervisor is killed with SIGKILL, then its workers stop within a few seconds, serving no one unsupervised."""
    proxy = _proxy(apps, tmp_path)
    pids = [w["pid"] for w in _workers(proxy, 2)]
    proxy.process.kill()
    proxy.process.wait(10)
    for pid in pids:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"worker {pid} outlived its supervisor")


def _probes(log: str) -> int:
    return sum('"GET /health HTTP/1.1"' in line for line in log.splitlines())


def test_one_probe_per_interval_not_one_per_worker(tmp_path: Path) -> None:
    """If two workers serve a health-checked colour, then its backend gets one probe per interval, as from one process."""
    blue = start_twistd("myapp", [], {}, tmp_path)
    green = start_twistd("myapp", [], {}, tmp_path)
    proxy = _proxy(
        (blue.port, green.port), tmp_path, BLUE_HEALTH="/health", SILLYPROXY_HEALTH_INTERVAL="0.5"
    )
    try:
        _workers(proxy, 2)
        time.sleep(1)
        before = _probes(blue.log())
        time.sleep(4)
        probes = _probes(blue.log()) - before
        # Eight intervals in 4 s: one prober gives at most about 8 (fewer on
        # a loaded machine, which skips late intervals), two would give 16.
        assert 1 <= probes <= 11, probes
        status = proxy.status()["colors"]["blue"]["addresses"]
        assert [a["passing_health_checks"] for a in status] == [True]
    finally:
        proxy.stop()
        blue.stop()
        green.stop()


def test_a_rollback_applies_to_every_worker(tmp_path: Path) -> None:
    """If green fails, then the replica's traffic over both workers rolls it back once, /healthz fails, and within a second every worker sends everything to blue."""
    blue = start_twistd("myapp", [], {}, tmp_path)
    green = start_twistd("myapp", [], {"MYAPP_ERROR_RATE": "1"}, tmp_path)
    proxy = _proxy(
        (blue.port, green.port),
        tmp_path,
        GREEN_ROLLBACK_ERROR_RATE="0.2",
        SILLYPROXY_ANALYSIS_MIN_REQUESTS="20",
        SILLYPROXY_ROLLBACK_HEALTHZ="1",
    )
    try:
        _workers(proxy, 2)
        assert proxy.admin("/healthz") == (200, b"ok\n")
        deadline = time.monotonic() + 30
        failed = 0
        while proxy.admin("/healthz")[0] == 200 and time.monotonic() < deadline:
            failed += _get(proxy, 10).count(500)
        assert proxy.admin("/healthz") == (503, b"rolled back: green")
        assert failed >= 10
        # Every worker is told within a second or so: poll, with room to spare.
        deadline = time.monotonic() + 15
        while _get(proxy, 20) != [200] * 20 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _get(proxy, 100) == [200] * 100
        green_status = proxy.status()["colors"]["green"]
        assert green_status["rolled_back"] and green_status["share"] == 0.0
        assert "across the workers" in proxy.log()
        assert proxy.log().count("green rolled back:") == 2, proxy.log()
    finally:
        proxy.stop()
        blue.stop()
        green.stop()
