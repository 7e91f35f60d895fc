"""
End-to-end: HTTP/2 clients (httpx, and the h2 package over a bare TLS
socket) through a real proxy on an ssl: listener that offers h2 over ALPN,
to myapp processes and to HTTP/1.1 backends served from the test process.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import h2.config
import h2.connection
import hpack
import httpx
import pytest
import pytest_twisted
from hyperframe.frame import DataFrame, Frame, GoAwayFrame, HeadersFrame, RstStreamFrame, SettingsFrame
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.web.resource import Resource
from twisted.web.server import Site

from .backends import BIG_RESPONSE, MIB, BigBody, Digest, HeaderRecorder, Slow, pattern, stream_pattern
from .processes import Twistd, free_port, start_twistd
from .certificates import Credentials, client_context, make_credentials, ssl_description

# Bounds on every wait; generous, as CI machines may be slow.
TIMEOUT = 30.0
# The response the slow reader reads: far beyond every buffer and window
# (httpx opens 16 MiB of HTTP/2 flow-control window per stream and per
# connection).
SLOW_READ_SIZE = 256 * MIB
# How much the proxy's resident memory may grow while relaying it.
RSS_GROWTH_LIMIT = 40 * MIB


# --- Backends in the test process ----------------------------------------------


class Sized(Resource):
    """C{?mib=N}: N MiB of L{pattern}, produced only as fast as the proxy reads them."""

    isLeaf = True

    def render_GET(self, request):  # type: ignore[no-untyped-def]
        return stream_pattern(request, int(request.args.get(b"mib", [b"1"])[0]) * MIB)


class Arrivals(Resource):
    """Wraps a resource and notes each request's URI as it arrives (read from other threads)."""

    isLeaf = True

    def __init__(self, inner: Resource) -> None:
        super().__init__()
        self.inner = inner
        self.uris: list[bytes] = []

    def render(self, request):  # type: ignore[no-untyped-def]
        self.uris.append(request.uri)
        return self.inner.render(request)


class Root(Resource):
    """/headers, /big (50 MiB), /sized?mib=N, /slow?ms=N; any other path digests its body."""

    def __init__(self) -> None:
        super().__init__()
        self.headers = HeaderRecorder()
        self.slow = Arrivals(Slow())
        self.putChild(b"headers", self.headers)
        self.putChild(b"big", BigBody())
        self.putChild(b"sized", Sized())
        self.putChild(b"slow", self.slow)
        self._digest = Digest()

    def getChild(self, name: bytes, request: object) -> Resource:
        return self._digest


@pytest.fixture
def backend() -> Iterator[tuple[Root, int]]:
    """The test-process backend, served by the reactor pytest_twisted runs."""
    root = Root()
    port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
    yield root, port.getHost().port
    port.stopListening()


@pytest.fixture(scope="module")
def apps(tmp_path_factory) -> Iterator[tuple[int, int]]:  # type: ignore[no-untyped-def]
    """A blue and a green myapp."""
    logs = tmp_path_factory.mktemp("h2-apps")
    blue = start_twistd("myapp", [], {}, logs)
    try:
        green = start_twistd("myapp", [], {}, logs)
    except BaseException:
        blue.stop()
        raise
    yield blue.port, green.port
    blue.stop()
    green.stop()


@pytest.fixture
def credentials(tmp_path: Path) -> Credentials:
    return make_credentials(tmp_path, "h2.example")


# --- The proxy and clients -----------------------------------------------------


def tls_proxy(tmp_path: Path, credentials: Credentials, **environ: str) -> Twistd:
    """A proxy listening with ssl: on 127.0.0.1 (the admin listener as usual)."""
    port = free_port()
    return start_twistd(
        "sillyproxy",
        [],
        environ,
        tmp_path,
        port=port,
        listen=ssl_description(port, credentials.key_path, credentials.cert_path),
    )


def url(proxy: Twistd, path: str = "/") -> str:
    return f"https://127.0.0.1:{proxy.port}{path}"


def h2_client(credentials: Credentials, http2: bool = True) -> httpx.Client:
    """An httpx client that trusts only the test certificate; ALPN offers h2 and http/1.1, or http/1.1 alone."""
    return httpx.Client(
        http2=http2, verify=client_context(credentials), timeout=TIMEOUT, trust_env=False
    )


def admin_status(proxy: Twistd) -> dict:  # type: ignore[type-arg]
    response = httpx.get(f"http://127.0.0.1:{proxy.admin_port}/status", timeout=TIMEOUT, trust_env=False)
    assert response.status_code == 200
    return json.loads(response.content)  # type: ignore[no-any-return]


def expected_digest(size: int) -> str:
    digest = hashlib.sha256()
    for chunk in pattern(size):
        digest.update(chunk)
    return digest.hexdigest()


def rss(pid: int) -> int:
    """The process's resident set size, in bytes (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def within(seconds: float, deferred):  # type: ignore[no-untyped-def]
    """Bound a Deferred (a thread's work, say): it fails with TimeoutError past C{seconds}."""
    return deferred.addTimeout(seconds, reactor)


class RawH2:
    """
    An HTTP/2 client connection over a blocking TLS socket that shows the
    frames the server sends: the h2 package writes the requests, and
    hyperframe and hpack read the answers (h2's own state machine refuses
    every frame after a GOAWAY, even those of streams the GOAWAY lets finish).
    """

    def __init__(self, port: int, credentials: Credentials) -> None:
        context = client_context(credentials)
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.port = port
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self._buffer = b""
        self._decoder = hpack.Decoder()

    def request(self, path: str, extra: list[tuple[bytes, bytes]] | None = None) -> int:
        """Send a GET; C{extra} headers are sent as they are, even ones HTTP/2 forbids."""
        stream = self.conn.get_next_available_stream_id()
        if extra:
            self.conn.config.validate_outbound_headers = False
            self.conn.config.normalize_outbound_headers = False
        self.conn.send_headers(
            stream,
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", b"127.0.0.1:%d" % self.port),
                (b":path", path.encode("ascii")),
            ]
            + (extra or []),
            end_stream=True,
        )
        self.sock.sendall(self.conn.data_to_send())
        return stream

    def settle(self) -> list[Frame]:
        """Read the server's SETTINGS and acknowledge them, as a client does once connected."""
        frames: list[Frame] = []
        deadline = time.monotonic() + TIMEOUT
        while not any(isinstance(f, SettingsFrame) and "ACK" not in f.flags for f in frames):
            frames += self._read(deadline)
        self.sock.sendall(SettingsFrame(0, flags=["ACK"]).serialize())
        return frames

    def frames_until_closed(self, timeout: float = TIMEOUT) -> list[Frame]:
        """Every frame until the server closes the connection; fails past C{timeout}."""
        frames: list[Frame] = []
        deadline = time.monotonic() + timeout
        while True:
            more = self._read(deadline)
            if more is None:
                return frames
            frames += more

    def _read(self, deadline: float) -> list[Frame] | None:
        """The frames of one read (maybe none yet), or None at the end of the connection."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("the connection stayed open too long")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError):
            data = b""
        if not data:
            assert not self._buffer, self._buffer
            return None
        self._buffer += data
        frames = []
        while len(self._buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self._buffer[:9]))
            if len(self._buffer) < 9 + length:
                break
            frame.parse_body(memoryview(self._buffer[9 : 9 + length]))
            self._buffer = self._buffer[9 + length :]
            if isinstance(frame, HeadersFrame):
                assert "END_HEADERS" in frame.flags
                frame.decoded = self._decoder.decode(frame.data, raw=True)  # type: ignore[attr-defined]
            frames.append(frame)
        return frames

    def frames_for(self, seconds: float) -> list[Frame]:
        """Every frame the server sends within C{seconds}, or until it closes."""
        frames: list[Frame] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline - 0.01:
            try:
                more = self._read(deadline)
            except (socket.timeout, AssertionError):
                break
            if more is None:
                break
            frames += more
        return frames

    def close(self) -> None:
        self.sock.close()


# --- Tests ---------------------------------------------------------------------


def test_get_over_h2_and_http11_on_the_same_port(apps, tmp_path: Path, credentials: Credentials) -> None:  # type: ignore[no-untyped-def]
    """
    If a client negotiates h2 on the proxy's TLS listener, then its GET is
    answered over HTTP/2 with myapp's body, and is logged; if another client
    offers only http/1.1 on the same port, then it gets the same answer over
    HTTP/1.1.
    """
    blue, _ = apps
    proxy = tls_proxy(tmp_path, credentials, BLUE=f"http://127.0.0.1:{blue}")
    try:
        with h2_client(credentials) as client:
            response = client.get(url(proxy, "/over-h2?x=1"))
        assert response.http_version == "HTTP/2"
        assert response.status_code == 200
        assert response.text.startswith("blue "), response.text
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.headers["x-request-id"]
        assert proxy.logged(" GET /over-h2?x=1 blue 200 "), proxy.log()

        with h2_client(credentials, http2=False) as client:
            response = client.get(url(proxy, "/over-http11"))
        assert response.http_version == "HTTP/1.1"
        assert response.status_code == 200
        assert response.text.startswith("blue "), response.text
        assert proxy.logged(" GET /over-http11 blue 200 "), proxy.log()
        assert "Traceback" not in proxy.log()
    finally:
        proxy.stop()


@pytest_twisted.inlineCallbacks
def test_backend_sees_color_and_https_over_h2(backend, tmp_path: Path, credentials: Credentials):  # type: ignore[no-untyped-def]
    """
    If a request arrives over HTTP/2, then the HTTP/1.1 backend gets it with
    Color, X-Forwarded-Proto: https, a Host from :authority and the client's
    own headers, and none of HTTP/2's pseudo-headers.
    """
    root, backend_port = backend
    proxy = tls_proxy(tmp_path, credentials, BLUE=f"http://127.0.0.1:{backend_port}")

    def get() -> httpx.Response:
        with h2_client(credentials) as client:
            return client.get(url(proxy, "/headers"), headers={"x-custom": "kept"})

    try:
        response = yield within(TIMEOUT * 2, deferToThread(get))
        assert (response.http_version, response.status_code, response.content) == ("HTTP/2", 200, b"ok")
        [headers] = root.headers.seen
        assert headers[b"color"] == [b"blue"]
        assert headers[b"x-forwarded-proto"] == [b"https"]
        assert headers[b"host"] == [f"127.0.0.1:{proxy.port}".encode()]
        assert headers[b"x-custom"] == [b"kept"]
        assert not [name for name in headers if name.startswith(b":")], headers
    finally:
        proxy.stop()


def test_100_concurrent_streams_on_one_connection_are_split_4_to_1(apps, tmp_path: Path, credentials: Credentials) -> None:  # type: ignore[no-untyped-def]
    """
    If 100 requests go at once as streams of one HTTP/2 connection, with
    BLUE_WEIGHT=4 and GREEN_WEIGHT=1, then each is answered 200 by the
    colour it was sent to, about four in five by blue, and the proxy has
    one client connection open throughout.
    """
    blue, green = apps
    proxy = tls_proxy(
        tmp_path,
        credentials,
        BLUE=f"http://127.0.0.1:{blue}",
        GREEN=f"http://127.0.0.1:{green}",
        BLUE_WEIGHT="4",
        GREEN_WEIGHT="1",
    )

    async def run() -> tuple[list[httpx.Response], int, dict]:  # type: ignore[type-arg]
        async with httpx.AsyncClient(
            http2=True, verify=client_context(credentials), timeout=TIMEOUT, trust_env=False
        ) as client:
            # One request first, so that the connection exists (and the
            # server's SETTINGS are known) before the rest go at once.
            first = await client.get(url(proxy, "/first"))
            responses = await asyncio.wait_for(
                asyncio.gather(*(client.get(url(proxy, f"/stream/{n}")) for n in range(100))),
                TIMEOUT * 2,
            )
            connections = len(client._transport._pool.connections)  # type: ignore[attr-defined]
            status = await asyncio.to_thread(admin_status, proxy)
            return [first, *responses], connections, status

    try:
        responses, connections, status = asyncio.run(run())
        assert {(r.status_code, r.http_version) for r in responses} == {(200, "HTTP/2")}
        colors = [r.text.split(" ", 1)[0] for r in responses[1:]]
        blues, greens = colors.count("blue"), colors.count("green")
        assert blues + greens == 100, colors
        assert 60 <= blues <= 95, (blues, greens)
        assert connections == 1
        # The HTTP/2 connection, and not the HTTP/1.1 channel it replaced.
        assert status["open_connections"] == 1, status
        assert status["colors"]["blue"]["requests"] + status["colors"]["green"]["requests"] == 101, status
    finally:
        proxy.stop()


@pytest_twisted.inlineCallbacks
def test_50_mib_download_and_20_mib_upload_arrive_intact(backend, tmp_path: Path, credentials: Credentials):  # type: ignore[no-untyped-def]
    """
    If a 50 MiB response and a 20 MiB request body with a Content-Length
    cross the proxy over HTTP/2, then every byte arrives, in order, at the
    other end.
    """
    _, backend_port = backend
    proxy = tls_proxy(tmp_path, credentials, BLUE=f"http://127.0.0.1:{backend_port}")
    upload = b"".join(pattern(20 * MIB))

    def exchange() -> tuple[httpx.Response, int, str, httpx.Response]:
        with h2_client(credentials) as client:
            digest = hashlib.sha256()
            size = 0
            with client.stream("GET", url(proxy, "/big")) as download:
                for chunk in download.iter_raw():
                    digest.update(chunk)
                    size += len(chunk)
            uploaded = client.post(url(proxy, "/upload"), content=upload)
        return download, size, digest.hexdigest(), uploaded

    try:
        download, size, digest, uploaded = yield within(TIMEOUT * 4, deferToThread(exchange))
        assert (download.http_version, download.status_code) == ("HTTP/2", 200)
        assert download.headers["content-length"] == str(BIG_RESPONSE)
        assert size == BIG_RESPONSE
        assert digest == expected_digest(BIG_RESPONSE)
        assert (uploaded.http_version, uploaded.status_code) == ("HTTP/2", 200), uploaded.text
        assert uploaded.content == b"%d %s /upload blue" % (20 * MIB, hashlib.sha256(upload).hexdigest().encode())
        assert "Traceback" not in proxy.log()
    finally:
        proxy.stop()


@pytest_twisted.inlineCallbacks
def test_upload_without_content_length_arrives_intact(backend, tmp_path: Path, credentials: Credentials):  # type: ignore[no-untyped-def]
    """
    If an HTTP/2 client streams a 20 MiB request body without a
    Content-Length (HTTP/2 frames the body itself, so none is needed), then
    the backend gets every byte of it, in order.
    """
    _, backend_port = backend
    proxy = tls_proxy(tmp_path, credentials, BLUE=f"http://127.0.0.1:{backend_port}")

    def upload() -> httpx.Response:
        with h2_client(credentials) as client:
            request = client.build_request("POST", url(proxy, "/streamed"), content=pattern(20 * MIB))
            assert "content-length" not in request.headers
            return client.send(request)

    try:
        response = yield within(TIMEOUT * 4, deferToThread(upload))
        assert (response.http_version, response.status_code) == ("HTTP/2", 200), response.text
        assert response.content == b"%d %s /streamed blue" % (20 * MIB, expected_digest(20 * MIB).encode())
    finally:
        proxy.stop()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc (Linux)")
@pytest_twisted.inlineCallbacks
def test_slow_reader_keeps_the_proxy_memory_flat(backend, tmp_path: Path, credentials: Credentials):  # type: ignore[no-untyped-def]
    """
    If an HTTP/2 client reads a 256 MiB response slowly (about 10 s), then
    HTTP/2 flow control pauses the backend: the proxy's resident memory
    grows by less than 40 MiB, and the body arrives complete.
    """
    _, backend_port = backend
    proxy = tls_proxy(tmp_path, credentials, BLUE=f"http://127.0.0.1:{backend_port}")
    pid = proxy.process.pid
    pause_per_mib = 10.0 / (SLOW_READ_SIZE // MIB)

    def read_slowly() -> tuple[httpx.Response, int, str, int, int, float]:
        with h2_client(credentials) as client:
            # Warm up: TLS, HTTP/2 and the forwarding path have all run once.
            warm = client.get(url(proxy, "/sized?mib=1"))
            assert (warm.http_version, len(warm.content)) == ("HTTP/2", MIB)
            time.sleep(0.5)
            baseline = peak = rss(pid)
            digest = hashlib.sha256()
            size = 0
            next_pause = MIB
            started = time.monotonic()
            with client.stream("GET", url(proxy, f"/sized?mib={SLOW_READ_SIZE // MIB}")) as response:
                for chunk in response.iter_raw():
                    digest.update(chunk)
                    size += len(chunk)
                    if size >= next_pause:
                        next_pause += MIB
                        peak = max(peak, rss(pid))
                        if time.monotonic() - started > 120:
                            raise AssertionError(f"only {size} bytes read in 120 s")
                        time.sleep(pause_per_mib)
            peak = max(peak, rss(pid))
            return response, size, digest.hexdigest(), baseline, peak, time.monotonic() - started

    try:
        response, size, digest, baseline, peak, took = yield within(240, deferToThread(read_slowly))
        assert (response.http_version, response.status_code) == ("HTTP/2", 200)
        assert size == SLOW_READ_SIZE
        assert digest == expected_digest(SLOW_READ_SIZE)
        growth = peak - baseline
        assert growth < RSS_GROWTH_LIMIT, (
            f"proxy RSS grew by {growth / MIB:.1f} MiB (from {baseline / MIB:.1f} to {peak / MIB:.1f} MiB) "
            f"relaying {SLOW_READ_SIZE // MIB} MiB to a slow reader in {took:.1f}s"
        )
        print(f"RSS {baseline / MIB:.1f} -> peak {peak / MIB:.1f} MiB (+{growth / MIB:.1f}) in {took:.1f}s")
    finally:
        proxy.stop()


@pytest_twisted.inlineCallbacks
def test_sigterm_sends_goaway_finishes_streams_and_exits_0(backend, tmp_path: Path, credentials: Credentials):  # type: ignore[no-untyped-def]
    """
    If the proxy gets SIGTERM while an HTTP/2 connection has a request in
    flight to a backend that answers after about 1 s, then the connection
    gets GOAWAY (NO_ERROR) at once, the response still arrives complete
    (200), the connection is then closed, and the proxy exits 0.
    """
    root, backend_port = backend
    proxy = tls_proxy(tmp_path, credentials, BLUE=f"http://127.0.0.1:{backend_port}")

    def scenario() -> tuple[list[Frame], int, float, float]:
        raw = RawH2(proxy.port, credentials)
        try:
            raw.settle()
            stream = raw.request("/slow?ms=1500")
            deadline = time.monotonic() + TIMEOUT
            while not root.slow.uris:
                assert time.monotonic() < deadline, "the request never reached the backend"
                time.sleep(0.01)
            signalled = time.monotonic()
            proxy.terminate()
            frames = raw.frames_until_closed()
            closed_after = time.monotonic() - signalled
        finally:
            raw.close()
        assert stream == 1
        exit_code = proxy.wait(20)
        return frames, exit_code, closed_after, time.monotonic() - signalled

    try:
        frames, exit_code, closed_after, exited_after = yield within(TIMEOUT * 3, deferToThread(scenario))
        kinds = [type(frame).__name__ for frame in frames]
        assert not [frame for frame in frames if isinstance(frame, RstStreamFrame)], (kinds, proxy.log())
        # A GOAWAY at once, and (RFC 9113 section 6.8's graceful shutdown)
        # perhaps a last one as the connection closes; all NO_ERROR.
        goaways = [frame for frame in frames if isinstance(frame, GoAwayFrame)]
        assert goaways and all(goaway.error_code == 0 for goaway in goaways), goaways
        assert goaways[0].last_stream_id >= 1, goaways
        # GOAWAY first; then the response of the stream in flight, whole.
        assert kinds.count("HeadersFrame") == 1, (kinds, closed_after, proxy.log()[-4000:])
        [head] = [frame for frame in frames if isinstance(frame, HeadersFrame)]
        assert kinds.index("GoAwayFrame") < kinds.index("HeadersFrame"), kinds
        assert (head.stream_id, dict(head.decoded)[b":status"]) == (1, b"200"), head.decoded  # type: ignore[attr-defined]
        data = [frame for frame in frames if isinstance(frame, DataFrame) and frame.stream_id == 1]
        assert b"".join(frame.data for frame in data) == b"blue\n"
        assert "END_STREAM" in (data[-1].flags if data else head.flags), kinds
        assert 1.0 <= closed_after < 10, closed_after
        assert exit_code == 0, proxy.log()
        assert exited_after < 10, exited_after
        assert proxy.logged(" GET /slow?ms=1500 blue 200 "), proxy.log()
        assert proxy.logged("drained"), proxy.log()
        assert "Traceback" not in proxy.log()
    finally:
        proxy.stop()


def test_body_over_the_limit_is_refused_on_its_stream(apps, tmp_path: Path, credentials: Credentials) -> None:  # type: ignore[no-untyped-def]
    """
    If an HTTP/2 request declares a body over SILLYPROXY_MAX_BODY, then that
    stream gets 413 with the reason, is logged and counted with no colour,
    and the same connection goes on serving other requests.
    """
    blue, _ = apps
    proxy = tls_proxy(tmp_path, credentials, BLUE=f"http://127.0.0.1:{blue}", SILLYPROXY_MAX_BODY="1000")
    try:
        with h2_client(credentials) as client:
            # Far more than arrives before the 413 does: the rest of the
            # body then comes for a stream already answered.
            refused = client.post(url(proxy, "/upload"), content=b"x" * (8 * 1024 * 1024))
            after = client.get(url(proxy, "/after"))
        assert refused.http_version == "HTTP/2"
        assert refused.status_code == 413, refused.text
        assert refused.text == "request body is larger than the limit of 1000 bytes\n"
        assert (after.status_code, after.text.split()[0]) == (200, "blue")
        assert proxy.logged(" POST /upload - 413 "), proxy.log()
        metrics = httpx.get(f"http://127.0.0.1:{proxy.admin_port}/metrics", timeout=TIMEOUT, trust_env=False).text
        assert 'sillyproxy_requests_total{code="413",color="none",method="POST"} 1.0' in metrics
        assert "Traceback" not in proxy.log()
    finally:
        proxy.stop()


def test_connection_specific_header_is_refused(apps, tmp_path: Path, credentials: Credentials) -> None:  # type: ignore[no-untyped-def]
    """If an HTTP/2 client sends a connection-specific header (Connection: keep-alive), then nothing reaches a backend and the proxy does not crash."""
    blue, _ = apps
    proxy = tls_proxy(tmp_path, credentials, BLUE=f"http://127.0.0.1:{blue}")
    raw = RawH2(proxy.port, credentials)
    try:
        raw.settle()
        stream = raw.request("/bad", extra=[(b"connection", b"keep-alive")])
        frames = raw.frames_for(2)
        kinds = [type(frame).__name__ for frame in frames]
        # Refused: the stream reset, or the connection closed with an error.
        assert "HeadersFrame" not in kinds, kinds
        assert any(
            (isinstance(frame, RstStreamFrame) and frame.stream_id == stream)
            or (isinstance(frame, GoAwayFrame) and frame.error_code != 0)
            for frame in frames
        ), kinds
        assert " GET /bad " not in proxy.log()
        with h2_client(credentials) as client:
            assert client.get(url(proxy, "/still-up")).status_code == 200
    finally:
        raw.close()
        proxy.stop()
