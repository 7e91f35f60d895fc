"""End-to-end over real sockets: SILLYPROXY_SEND_TIMEOUT cuts a client that stopped reading, and spares one that reads."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import deferToThread

from .processes import Twistd, start_twistd

BODY = 20 * 1024 * 1024
SEND_TIMEOUT = 2


class BigBackend(Protocol):
    """Answers any request with BODY bytes, and notes when its connection ends."""

    def dataReceived(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BODY)
            self.transport.write(b"x" * BODY)

    def connectionLost(self, reason: object = None) -> None:
        self.factory.closed_at.append(time.monotonic())


class BigBackendFactory(Factory):
    protocol = BigBackend

    def __init__(self) -> None:
        self.closed_at: list[float] = []


@pytest.fixture(scope="module")
def big_backend() -> Iterator[tuple[BigBackendFactory, int]]:
    factory = BigBackendFactory()
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    yield factory, port.getHost().port
    port.stopListening()


@pytest.fixture(scope="module")
def proxy(big_backend, tmp_path_factory) -> Iterator[Twistd]:  # type: ignore[no-untyped-def]
    _, port = big_backend
    running = start_twistd(
        "sillyproxy",
        [],
        {"BLUE": f"http://127.0.0.1:{port}", "SILLYPROXY_SEND_TIMEOUT": str(SEND_TIMEOUT)},
        tmp_path_factory.mktemp("send-timeout"),
    )
    yield running
    running.stop()


def _request(port: int) -> socket.socket:
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    client.settimeout(10)
    client.connect(("127.0.0.1", port))
    client.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
    return client


def _stop_reading(port: int, factory: BigBackendFactory) -> tuple[float, float | None]:
    """Read the first bytes, then nothing; (when we stopped, when the backend connection closed)."""
    before = len(factory.closed_at)
    with _request(port) as client:
        client.recv(1024)
        stopped = time.monotonic()
        deadline = stopped + 20
        while len(factory.closed_at) == before and time.monotonic() < deadline:
            time.sleep(0.1)
    return stopped, factory.closed_at[before] if len(factory.closed_at) > before else None


def _read_steadily(port: int) -> int:
    """Read the whole body, 64 KiB every 20 ms (a reader far slower than loopback); the body bytes read."""
    received = b""
    head = 0
    body = 0
    with _request(port) as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            chunk = client.recv(64 * 1024)
            if not chunk:
                break
            if not head:
                received += chunk
                if b"\r\n\r\n" not in received:
                    continue
                head = received.index(b"\r\n\r\n") + 4
                body = len(received) - head
            else:
                body += len(chunk)
            if body >= BODY:
                break
            time.sleep(0.02)
    return body


@pytest_twisted.inlineCallbacks
def test_client_that_stops_reading_is_cut_off(proxy: Twistd, big_backend):  # type: ignore[no-untyped-def]
    """
    If a client stops reading a 20 MB response, then after about
    SILLYPROXY_SEND_TIMEOUT both connections are closed (the backend's is
    not pooled), and the access log says why.
    """
    factory, _ = big_backend
    stopped, closed = yield deferToThread(_stop_reading, proxy.port, factory)
    assert closed is not None, "the backend connection was never closed"
    # The kernel takes a few MB first, then the timeout runs (checked every
    # half second); not at once, and not much later.
    assert SEND_TIMEOUT / 2 <= closed - stopped < SEND_TIMEOUT + 10
    assert proxy.logged("client stopped reading"), proxy.log()


@pytest_twisted.inlineCallbacks
def test_client_that_keeps_reading_is_not_cut_off(proxy: Twistd):  # type: ignore[no-untyped-def]
    """If a client reads slowly but steadily, then it gets the whole response, however long it takes past the send timeout."""
    started = time.monotonic()
    received = yield deferToThread(_read_steadily, proxy.port)
    assert received == BODY
    assert time.monotonic() - started > SEND_TIMEOUT
