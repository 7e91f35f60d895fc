"""
In-memory tests of the real forwarding hop: ResolvingUpstream, then the
AddressAgent and RetirablePool that backend_address_factory builds, then
Twisted's HTTP/1.1 client protocol, over iosim connections to the backend.
"""

from __future__ import annotations

from twisted.internet import error
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Request, Site

from sillyproxy._upload import CHUNK_SIZE

from .support import (
    CaptureResource,
    InMemoryProxy,
    RawBackendFactory,
    TableTests,
    backend,
    rows,
)

BLUE = backend("blue", "http://blue.internal:8080")


def get(proxy: InMemoryProxy, path: bytes = b"/") -> bytes:
    """Send one GET as raw bytes, flush, and return what the client got."""
    written, _ = proxy.raw(b"GET %s HTTP/1.1\r\nHost: shop.example\r\n\r\n" % path)
    return written


class ExchangeTests(SynchronousTestCase):
    def test_request_and_response_cross_the_wire(self) -> None:
        """
        If a client sends a request with a body, then the backend parses it
        off the wire with its method, target, headers and body, and the
        client gets the backend's status, reason, repeated headers and body.
        """
        capture = CaptureResource(
            status=201,
            headers=[(b"Set-Cookie", [b"a=1", b"b=2"]), (b"X-Backend", [b"yes"])],
            body=b"created",
        )
        proxy = InMemoryProxy([(BLUE, capture)])
        d = proxy.client.request(
            "POST",
            "http://shop.example/things?x=1",
            data=b"payload",
            headers={"X-Custom": "kept"},
        )
        proxy.flush()
        response = self.successResultOf(d)
        body = proxy.client.content(response)
        proxy.flush()
        self.assertEqual(self.successResultOf(body), b"created")
        self.assertEqual((response.code, response.phrase), (201, b"Created"))
        self.assertEqual(response.headers.getRawHeaders(b"set-cookie"), [b"a=1", b"b=2"])
        self.assertEqual(response.headers.getRawHeaders(b"x-backend"), [b"yes"])
        [seen] = capture.seen
        self.assertEqual((seen.method, seen.uri, seen.body), (b"POST", b"/things?x=1", b"payload"))
        self.assertEqual(seen.headers.getRawHeaders(b"x-custom"), [b"kept"])
        self.assertEqual(seen.headers.getRawHeaders(b"host"), [b"shop.example"])
        self.assertEqual(seen.headers.getRawHeaders(b"color"), [b"blue"])
        self.assertEqual(seen.headers.getRawHeaders(b"content-length"), [b"7"])
        self.assertEqual(proxy.connections("blue"), 1)
        self.assertEqual(proxy.access[0].upstream, "10.0.0.1:8080")

    def test_request_body_streams_from_the_spool(self) -> None:
        """
        If a client uploads a body larger than one chunk, then it goes to the
        backend 64 KiB at a time, each piece on the wire before the next is
        read, with the client's Content-Length, and arrives whole.
        """
        arrivals: list[int] = []

        class Recording(Request):
            def handleContentChunk(self, data: bytes) -> None:
                arrivals.append(len(data))
                super().handleContentChunk(data)

        capture = CaptureResource()
        site = Site(capture)
        site.requestFactory = Recording
        proxy = InMemoryProxy([(BLUE, site)])
        data = bytes(range(256)) * 1200  # 307,200 bytes: twisted.web spools it to disk
        d = proxy.client.request("PUT", "http://shop.example/up", data=data)
        proxy.flush()
        self.assertEqual(self.successResultOf(d).code, 200)
        self.assertEqual(arrivals, [CHUNK_SIZE] * 4 + [len(data) - 4 * CHUNK_SIZE])
        self.assertEqual(capture.seen[0].body, data)
        self.assertEqual(
            capture.seen[0].headers.getRawHeaders(b"content-length"), [b"%d" % len(data)]
        )


class KeepAliveTests(SynchronousTestCase):
    def test_connection_reused(self) -> None:
        """If requests follow one another, then they share one pooled backend connection."""
        capture = CaptureResource()
        proxy = InMemoryProxy([(BLUE, capture)])
        for _ in range(3):
            self.assertTrue(get(proxy).startswith(b"HTTP/1.1 200 "))
        self.assertEqual(len(capture.seen), 3)
        self.assertEqual(proxy.connections("blue"), 1)
        self.assertEqual(proxy.idle_connections("blue"), 1)

    def test_connection_close_response_not_reused(self) -> None:
        """If the backend answers with Connection: close, then that connection closes and the next request opens another."""
        capture = CaptureResource(headers=[(b"Connection", [b"close"])])
        proxy = InMemoryProxy([(BLUE, capture)])
        first = get(proxy)
        self.assertTrue(first.startswith(b"HTTP/1.1 200 "), first)
        self.assertNotIn(b"Connection: close", first)
        self.assertEqual((proxy.open_connections("blue"), proxy.idle_connections("blue")), (0, 0))
        self.assertTrue(get(proxy).startswith(b"HTTP/1.1 200 "))
        self.assertEqual(proxy.connections("blue"), 2)

    def test_no_keepalive_means_a_connection_per_request(self) -> None:
        """If SILLYPROXY_BACKEND_KEEPALIVE is 0, then every request opens its own connection, asking the backend to close it."""
        capture = CaptureResource()
        proxy = InMemoryProxy([(BLUE, capture)], keepalive=0)
        for _ in range(2):
            self.assertTrue(get(proxy).startswith(b"HTTP/1.1 200 "))
        self.assertEqual(proxy.connections("blue"), 2)
        self.assertEqual((proxy.open_connections("blue"), proxy.idle_connections("blue")), (0, 0))
        self.assertEqual(capture.seen[0].headers.getRawHeaders(b"connection"), [b"close"])

    def test_backend_closing_an_idle_connection(self) -> None:
        """If the backend closes a pooled connection while it idles, then the next request goes over a new one and succeeds."""
        proxy = InMemoryProxy([(BLUE, CaptureResource())])
        self.assertTrue(get(proxy).startswith(b"HTTP/1.1 200 "))
        [pump] = proxy.network.opened[proxy.backend_addresses["blue"]]
        pump.serverIO.loseConnection()
        proxy.flush()
        self.assertTrue(get(proxy).startswith(b"HTTP/1.1 200 "))
        self.assertEqual(proxy.connections("blue"), 2)

    def test_address_leaving_dns(self) -> None:
        """If the backend's address leaves DNS, then at the next lookup its idle connection closes and requests go to the new address."""
        proxy = InMemoryProxy([(BLUE, CaptureResource())])
        self.assertTrue(get(proxy).startswith(b"HTTP/1.1 200 "))
        old = proxy.backend_addresses["blue"]
        proxy.network.listen("10.0.0.9", 8080, proxy.network.servers[old])
        proxy.resolvers["blue"].addresses = ["10.0.0.9"]
        proxy.clock.advance(4.9)
        proxy.flush()
        self.assertEqual(proxy.network.open_connections(*old), 1)
        proxy.clock.advance(0.1)
        proxy.flush()
        self.assertEqual(proxy.network.open_connections(*old), 0)
        self.assertTrue(get(proxy).startswith(b"HTTP/1.1 200 "))
        self.assertEqual(proxy.network.connections("10.0.0.9", 8080), 1)
        self.assertEqual(proxy.access[-1].upstream, "10.0.0.9:8080")


class MalformedResponseTests(TableTests):
    @rows(
        (b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",),
        (b"HTTP/1.1\r\nContent-Length: 0\r\n\r\n",),
        (b"SMTP ready\r\n\r\n",),
    )
    def test_malformed_status_line_gives_502(self, answer: bytes) -> None:
        """If the backend's status line cannot be parsed, then the client gets 502 'backend sent a malformed response'."""
        proxy = InMemoryProxy([(BLUE, RawBackendFactory(answer))])
        written = get(proxy)
        self.assertTrue(written.startswith(b"HTTP/1.1 502 "), written)
        self.assertTrue(written.endswith(b"\r\n\r\nbackend sent a malformed response\n"), written)
        self.assertEqual(proxy.access[0].outcome, "backend sent a malformed response")
        self.assertEqual(proxy.idle_connections("blue"), 0)
        self.flushLoggedErrors()

    @rows(
        (b"HTTP/1.1 200 OK\r\nBroken header line\r\n\r\nsecret",),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Length: 7\r\n\r\nsecret",),
        (b"HTTP/1.1 200 OK\r\nContent-Length: six\r\n\r\nsecret",),
    )
    def test_malformed_headers_give_502(self, answer: bytes) -> None:
        """If the backend's headers cannot be parsed or contradict each other, then the client gets a one-line 502 and none of the backend's bytes."""
        proxy = InMemoryProxy([(BLUE, RawBackendFactory(answer))])
        written = get(proxy)
        head, _, body = written.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 502 "), written)
        self.assertIn(b"\r\nContent-Type: text/plain; charset=utf-8", head)
        self.assertEqual(body.count(b"\n"), 1, body)
        self.assertNotIn(b"secret", written)
        self.assertEqual(proxy.idle_connections("blue"), 0)
        self.flushLoggedErrors()


class BodyFailureTests(SynchronousTestCase):
    def test_backend_closing_mid_body_aborts_client(self) -> None:
        """If the backend closes before the length it promised, then the client connection is aborted after what did arrive."""
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10
        proxy = InMemoryProxy([(BLUE, RawBackendFactory(answer))])
        written, transport = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertIn(b"\r\nContent-Length: 1000\r\n", written)
        self.assertTrue(written.endswith(b"\r\n\r\n" + b"x" * 10), written)
        self.assertTrue(transport.disconnected, "client connection was not aborted")
        # What the aborted TCP connection then reports.
        transport.protocol.connectionLost(Failure(error.ConnectionLost()))
        self.assertEqual(proxy.access[0].outcome, "backend failed mid-body")

    def test_client_leaving_mid_body_closes_the_backend_connection(self) -> None:
        """If the client leaves mid-body, then the backend connection is closed rather than pooled half-read."""
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10
        proxy = InMemoryProxy([(BLUE, RawBackendFactory(answer, close=False))])
        _, transport = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(proxy.open_connections("blue"), 1)
        transport.protocol.connectionLost(Failure(error.ConnectionLost()))
        proxy.flush()
        self.assertEqual((proxy.open_connections("blue"), proxy.idle_connections("blue")), (0, 0))
        self.assertEqual(proxy.access[0].outcome, "client closed")


class ConnectFailureTests(SynchronousTestCase):
    def test_refused_connection(self) -> None:
        """If nothing listens at the backend's address, then the client gets 502 'backend refused the connection'."""
        proxy = InMemoryProxy([(BLUE, CaptureResource())])
        del proxy.network.servers[proxy.backend_addresses["blue"]]
        written = get(proxy)
        self.assertTrue(written.startswith(b"HTTP/1.1 502 "), written)
        self.assertTrue(written.endswith(b"\r\n\r\nbackend refused the connection\n"), written)
        self.flushLoggedErrors()

    def test_connect_timeout(self) -> None:
        """If the backend does not accept the connection within SILLYPROXY_CONNECT_TIMEOUT, then 504 at that time, not before."""
        proxy = InMemoryProxy([(BLUE, CaptureResource())], connect_timeout=3)
        proxy.network.unreachable.add(proxy.backend_addresses["blue"])
        _, transport = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        proxy.clock.advance(2.9)
        self.assertEqual(transport.value(), b"")
        proxy.clock.advance(0.1)
        proxy.flush()
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 504 "), transport.value())
        self.assertTrue(
            transport.value().endswith(b"backend did not accept the connection in time\n")
        )
        self.flushLoggedErrors()

    def test_refusals_eject_the_address(self) -> None:
        """If the only address refuses 3 connections in a row, then the next request gets 503 without dialling, until 10 s have passed."""
        proxy = InMemoryProxy([(BLUE, CaptureResource())])
        address = proxy.backend_addresses["blue"]
        del proxy.network.servers[address]
        for _ in range(3):
            self.assertTrue(get(proxy).startswith(b"HTTP/1.1 502 "))
        written = get(proxy)
        self.assertTrue(written.startswith(b"HTTP/1.1 503 "), written)
        self.assertEqual(proxy.network.attempts[address], 3)
        proxy.clock.advance(10)
        self.assertTrue(get(proxy).startswith(b"HTTP/1.1 502 "))
        self.assertEqual(proxy.network.attempts[address], 4)
        self.flushLoggedErrors()
