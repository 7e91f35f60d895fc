"""End-to-end tests with raw sockets: malformed requests, smuggling attempts, lying backends, slow clients."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import deferToThread
from twisted.web.resource import Resource
from twisted.web.server import Site

from .processes import Twistd, start_twistd


class Recorder(Resource):
    """A backend that records each request it parses and answers 'ok'."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[bytes, bytes, bytes]] = []

    def render(self, request):  # type: ignore[no-untyped-def]
        self.seen.append((request.method, request.uri, request.content.read()))
        return b"ok"


class Liar(Protocol):
    """A backend that answers every request with the same raw bytes, then closes."""

    answer = b""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(self.answer)
        self.transport.loseConnection()


@pytest.fixture(scope="module")
def recorder() -> Iterator[tuple[Recorder, int]]:
    resource = Recorder()
    port = reactor.listenTCP(0, Site(resource), interface="127.0.0.1")
    yield resource, port.getHost().port
    port.stopListening()


@pytest.fixture(scope="module")
def proxy(recorder, tmp_path_factory) -> Iterator[Twistd]:  # type: ignore[no-untyped-def]
    _, backend_port = recorder
    running = start_twistd(
        "sillyproxy",
        [],
        {
            "BLUE": f"http://127.0.0.1:{backend_port}",
            "SILLYPROXY_HEADER_TIMEOUT": "1",
            "SILLYPROXY_BODY_TIMEOUT": "1",
        },
        tmp_path_factory.mktemp("hardening"),
    )
    yield running
    running.stop()


def exchange(port: int, data: bytes, pause: float = 0.0, timeout: float = 10.0) -> tuple[bytes, float]:
    """Send raw bytes (one at a time if pause), read until the proxy closes; (answer, seconds taken)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            if pause:
                for i in range(len(data)):
                    s.sendall(data[i : i + 1])
                    time.sleep(pause)
            else:
                s.sendall(data)
        except OSError:
            pass  # the proxy may close on us mid-send; what it said still counts
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, socket.timeout):
            pass
    return b"".join(chunks), time.monotonic() - started


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 requests need a Host header"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"more than one Host header"),
        (b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", b"more than one Host header"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: one\r\n two\r\n\r\n", b"obsolete line folding is not allowed"),
        (b"GET / HTTP/1.1\nHost: a\n\n", b"bare LF line endings are not allowed"),
        (b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", b"bare LF line endings are not allowed"),
    ],
)
@pytest_twisted.inlineCallbacks
def test_malformed_requests_get_400(proxy: Twistd, recorder, raw: bytes, reason: bytes):  # type: ignore[no-untyped-def]
    """If a request is malformed, then 400 with the reason, promptly (no hang), and nothing is forwarded."""
    resource, _ = recorder
    before = len(resource.seen)
    answer, took = yield deferToThread(exchange, proxy.port, raw)
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert answer.endswith(reason + b"\n")
    assert took < 5
    assert len(resource.seen) == before


@pytest_twisted.inlineCallbacks
def test_request_arriving_a_byte_at_a_time_is_served(proxy: Twistd, recorder):  # type: ignore[no-untyped-def]
    """If every CRLF of a valid request is split between two reads, then it is still served, not taken for bare LFs."""
    resource, _ = recorder
    raw = b"GET /slow HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    answer, _ = yield deferToThread(exchange, proxy.port, raw, 0.002)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert [uri for _, uri, _ in resource.seen][-1] == b"/slow"


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"


@pytest.mark.parametrize(
    "raw",
    [
        # CL.TE: a front end using Content-Length would pass the GET along in the body.
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 41\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        # TE.CL
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n29\r\n" + SMUGGLED + b"\r\n0\r\n\r\n",
        # Two Content-Lengths
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 41\r\n\r\n" + SMUGGLED,
        # A coding list that ends in something other than chunked
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + SMUGGLED,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nContent-Length: 41\r\n\r\n" + SMUGGLED,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        # Chunk-size tricks
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-0\r\n\r\n" + SMUGGLED,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x29\r\n" + SMUGGLED + b"\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +41\r\n\r\n" + SMUGGLED,
    ],
)
@pytest_twisted.inlineCallbacks
def test_smuggling_never_reaches_backend(proxy: Twistd, recorder, raw: bytes):  # type: ignore[no-untyped-def]
    """If a client hides a second request with conflicting framing, then the backend never receives it."""
    resource, _ = recorder
    answer, _ = yield deferToThread(exchange, proxy.port, raw + b"GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert not [uri for _, uri, _ in resource.seen if uri == b"/smuggled"]
    assert all(b"/smuggled" not in body for _, _, body in resource.seen)


@pytest_twisted.inlineCallbacks
def test_huge_chunk_size_is_refused_at_once(proxy: Twistd, recorder):  # type: ignore[no-untyped-def]
    """
    If a chunk claims to be enormous, then 413 at once, without waiting for
    its bytes, and the backend is sent nothing, so no request hidden inside
    reaches it.
    """
    resource, _ = recorder
    before = len(resource.seen)
    raw = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff1\r\n"
        + SMUGGLED
        + b"\r\n0\r\n\r\n"
    )
    answer, took = yield deferToThread(exchange, proxy.port, raw)
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert took < 5
    assert len(resource.seen) == before


def read_for(port: int, data: bytes, seconds: float) -> tuple[bytes, bool]:
    """Send raw bytes and read for C{seconds}: what came, and whether the connection was still open then."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + seconds
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as s:
        s.sendall(data)
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                return b"".join(chunks), False
            if not chunk:
                return b"".join(chunks), False
            chunks.append(chunk)
    return b"".join(chunks), True


@pytest_twisted.inlineCallbacks
def test_valid_chunked_body_is_reframed(proxy: Twistd, recorder):  # type: ignore[no-untyped-def]
    """If a chunked body is well formed, then the backend gets it whole, as one request."""
    resource, _ = recorder
    raw = (
        b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    answer, _ = yield deferToThread(exchange, proxy.port, raw)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert resource.seen[-1] == (b"POST", b"/chunked", b"hello world")


@pytest_twisted.inlineCallbacks
def test_slowloris_headers_are_cut_off(proxy: Twistd):  # type: ignore[no-untyped-def]
    """If a client trickles its headers past SILLYPROXY_HEADER_TIMEOUT (in total), then 408 and the connection closes."""
    trickle = b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"a" * 40
    answer, took = yield deferToThread(exchange, proxy.port, trickle, 0.1)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    # Each byte came well within a second; the limit is on the whole header.
    assert took < 4.5


@pytest.fixture
def liar() -> Iterator[type[Liar]]:
    class ThisLiar(Liar):
        pass

    port = reactor.listenTCP(0, Factory.forProtocol(ThisLiar), interface="127.0.0.1")
    ThisLiar.port = port.getHost().port  # type: ignore[attr-defined]
    yield ThisLiar
    port.stopListening()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBroken header line\r\n\r\n",
        b"SMTP ready\r\n\r\n",
    ],
)
@pytest_twisted.inlineCallbacks
def test_malformed_backend_response_gives_502(liar, tmp_path: Path, answer: bytes):  # type: ignore[no-untyped-def]
    """If the backend sends a malformed status line or headers, then the client gets a one-line 502 and the proxy logs no traceback."""
    liar.answer = answer
    running = start_twistd("sillyproxy", [], {"BLUE": f"http://127.0.0.1:{liar.port}"}, tmp_path)
    try:
        got, _ = yield deferToThread(
            exchange, running.port, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 502 "), got
        assert b"\r\nContent-Type: text/plain; charset=utf-8\r\n" in head + b"\r\n"
        # One line of the proxy's own (the exact reasons are in test_forwarding_hop).
        assert body.endswith(b"\n") and body.count(b"\n") == 1, body
        assert "Traceback" not in running.log()
    finally:
        running.stop()


@pytest_twisted.inlineCallbacks
def test_backend_closing_mid_body_aborts_client(liar, tmp_path: Path):  # type: ignore[no-untyped-def]
    """If the backend closes before the promised length, then the client sees a cut connection, not a complete body."""
    liar.answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10
    running = start_twistd("sillyproxy", [], {"BLUE": f"http://127.0.0.1:{liar.port}"}, tmp_path)
    try:
        got, _ = yield deferToThread(exchange, running.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"Content-Length: 1000" in head
        # The abort may drop what was still buffered, never add to it.
        assert (b"x" * 10).startswith(body), body
    finally:
        running.stop()


@pytest_twisted.inlineCallbacks
def test_stalled_body_gets_408_and_is_logged_and_counted(proxy: Twistd, recorder):  # type: ignore[no-untyped-def]
    """
    If a client declares Content-Length: 100, sends 10 bytes and goes quiet,
    then past SILLYPROXY_BODY_TIMEOUT it gets 408 and the connection closes;
    the backend gets nothing; the access log and the metrics record the 408
    with no colour.
    """
    resource, _ = recorder
    before = len(resource.seen)
    raw = b"POST /stalled HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789"
    answer, took = yield deferToThread(exchange, proxy.port, raw)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert answer.endswith(b"request body stalled\n")
    assert took < 5
    assert len(resource.seen) == before
    assert proxy.logged(" POST /stalled - 408 "), proxy.log()
    metrics = yield deferToThread(_get, proxy.admin_port, "/metrics")
    assert 'sillyproxy_requests_total{code="408",color="none",method="POST"}' in metrics


@pytest_twisted.inlineCallbacks
def test_overlong_request_line_gets_414(proxy: Twistd):  # type: ignore[no-untyped-def]
    """If a request line is over 16 KiB, then the client gets 414 rather than a silent close."""
    answer, _ = yield deferToThread(exchange, proxy.port, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 414 "), answer[:100]


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.read().decode()
