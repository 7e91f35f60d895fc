"""End-to-end tests of stopping and replacing the proxy: drain, deadline, and a rolling update."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.web.client import Agent, HTTPConnectionPool

from .backends import serve
from .processes import free_port, start_twistd


@pytest.fixture
def backend_port() -> Iterator[int]:
    port = serve()
    yield port.getHost().port
    port.stopListening()


def sleep(seconds: float):  # type: ignore[no-untyped-def]
    return deferLater(reactor, seconds, lambda: None)


def read_until_closed(port: int, request: bytes) -> bytes:
    """Send a raw request on a new connection and read until the proxy closes it (blocking)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest_twisted.inlineCallbacks
def test_sigterm_lets_in_flight_requests_finish(running, tmp_path: Path, backend_port: int):  # type: ignore[no-untyped-def]
    """If SIGTERM arrives mid-request, then that request still gets its 200, new connections are refused, and the exit is 0."""
    proxy = start_twistd("sillyproxy", [], {"BLUE": f"http://127.0.0.1:{backend_port}"}, tmp_path)
    running.append(proxy)
    # Sockets block, and the backend runs in this process's reactor: talk
    # to the proxy from a thread.
    idle = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    idle.sendall(b"GET /slow?ms=0 HTTP/1.1\r\nHost: x\r\n\r\n")
    first = yield deferToThread(idle.recv, 4096)
    assert first.startswith(b"HTTP/1.1 200 ")

    in_flight = deferToThread(
        read_until_closed, proxy.port, b"GET /slow?ms=2000 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    yield sleep(0.5)
    ready = yield treq.get(f"http://127.0.0.1:{proxy.admin_port}/readyz")
    assert ready.code == 200
    yield ready.content()
    proxy.terminate()
    yield sleep(0.5)
    assert (yield deferToThread(refused, proxy.port))
    # Readiness says 503 for as long as the drain lasts.
    draining = yield treq.get(f"http://127.0.0.1:{proxy.admin_port}/readyz")
    assert (draining.code, (yield draining.text())) == (503, "draining\n")
    # The idle keep-alive connection was closed, not left to time out.
    assert (yield deferToThread(idle.recv, 4096)) == b""
    idle.close()

    response = yield in_flight
    assert response.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nConnection: close\r\n" in response
    # The backend sends no length, so the body comes chunked, and complete.
    assert b"\r\nTransfer-Encoding: chunked\r\n" in response
    assert response.endswith(b"\r\n\r\n5\r\nblue\n\r\n0\r\n\r\n"), response
    assert (yield deferToThread(proxy.wait)) == 0
    assert "drained" in proxy.log()


@pytest_twisted.inlineCallbacks
def test_drain_deadline_aborts_and_logs(running, tmp_path: Path, backend_port: int):  # type: ignore[no-untyped-def]
    """If a request outlasts SILLYPROXY_DRAIN_TIMEOUT, then it is aborted and logged, and the exit is still 0."""
    proxy = start_twistd(
        "sillyproxy",
        [],
        {"BLUE": f"http://127.0.0.1:{backend_port}", "SILLYPROXY_DRAIN_TIMEOUT": "1"},
        tmp_path,
    )
    running.append(proxy)
    stuck = treq.get(f"http://127.0.0.1:{proxy.port}/slow?ms=20000")
    yield sleep(0.5)
    started = time.monotonic()
    proxy.terminate()
    assert (yield deferToThread(proxy.wait)) == 0
    assert time.monotonic() - started < 10
    outcome = yield stuck.addCallbacks(lambda r: r.code, lambda f: f.type.__name__)
    assert outcome == "ResponseNeverReceived"
    assert "drain deadline: aborting GET /slow?ms=20000 from 127.0.0.1" in proxy.log()


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest_twisted.inlineCallbacks
def test_rolling_update_drops_nothing(running, tmp_path: Path, backend_port: int, workers: str):  # type: ignore[no-untyped-def]
    """
    If a replacement proxy with new weights joins the reuseport port and the
    old one gets SIGTERM under a steady stream of keep-alive clients, then
    every request gets a 2xx and, after the switch, the new split holds,
    for a single process and for a supervisor of two workers alike.
    """
    port = free_port()
    listen = f"reuseport:{port}:interface=127.0.0.1"
    backends = {
        "BLUE": f"http://127.0.0.1:{backend_port}/slow",
        "GREEN": f"http://127.0.0.1:{backend_port}/slow",
        "SILLYPROXY_WORKERS": workers,
    }
    old = start_twistd(
        "sillyproxy", [], {**backends, "BLUE_WEIGHT": "1", "GREEN_WEIGHT": "0"}, tmp_path, port, listen
    )
    running.append(old)

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 20
    client = treq.client.HTTPClient(Agent(reactor, pool=pool))
    outcomes: list[tuple[float, int | str, str]] = []
    stop_at = [time.monotonic() + 60.0]

    @pytest_twisted.inlineCallbacks
    def keep_asking():  # type: ignore[no-untyped-def]
        while time.monotonic() < stop_at[0]:
            sent = time.monotonic()
            try:
                response = yield client.get(f"http://127.0.0.1:{port}/?ms=200")
                body = yield response.text()
                outcomes.append((sent, response.code, body.strip()))
            except Exception as e:
                outcomes.append((sent, type(e).__name__, str(e)))

    streams = gatherResults([keep_asking() for _ in range(20)])
    yield sleep(2)
    new = start_twistd(
        "sillyproxy", [], {**backends, "BLUE_WEIGHT": "0", "GREEN_WEIGHT": "1"}, tmp_path, port, listen
    )
    running.append(new)
    yield sleep(1)
    old.terminate()
    assert (yield deferToThread(old.wait)) == 0
    switched = time.monotonic()
    stop_at[0] = switched + 3
    yield streams
    yield pool.closeCachedConnections()

    failures = [o for o in outcomes if o[1] != 200]
    assert failures == [], failures[:5]
    assert len(outcomes) > 200
    before = Counter(colour for sent, _, colour in outcomes if sent < 1.5 + outcomes[0][0])
    after = Counter(colour for sent, _, colour in outcomes if sent > switched)
    assert set(before) == {"blue"}
    assert set(after) == {"green"} and after["green"] > 50
