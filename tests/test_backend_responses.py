"""
What the client gets of an odd backend response, through the real
forwarding hop in memory (ResolvingUpstream, AddressAgent, RetirablePool,
Twisted's HTTP/1.1 client protocol): malformed responses become a 502 that
says so, and headers the backend's Connection header names never reach the
client.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._metrics import ProxyMetrics
from sillyproxy._routing import Router

from .support import InMemoryProxy, RawBackendFactory, TableTests, backend, rows

BLUE = backend("blue", "http://blue.internal:8080")


def metrics_for(router: Router) -> ProxyMetrics:
    return ProxyMetrics(CollectorRegistry(), router, "0.0.0", lambda: {}, lambda: 0.0)


def get(proxy: InMemoryProxy, path: bytes = b"/") -> bytes:
    """Send one GET as raw bytes, flush, and return what the client got."""
    written, _ = proxy.raw(b"GET %s HTTP/1.1\r\nHost: shop.example\r\n\r\n" % path)
    return written


def header_names(written: bytes) -> list[bytes]:
    """The lower-cased names of the response headers in C{written}."""
    head = written.partition(b"\r\n\r\n")[0]
    return [line.partition(b":")[0].lower() for line in head.split(b"\r\n")[1:]]


class MalformedResponseTests(TableTests):
    @rows(
        (b"two Content-Lengths", b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Length: 7\r\n\r\nsecret!"),
        (b"Content-Length +5", b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nsecret"),
        (
            b"gzip then chunked",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n6\r\nsecret\r\n0\r\n\r\n",
        ),
        (b"header without colon", b"HTTP/1.1 200 OK\r\nBroken header line\r\n\r\nsecret"),
        (b"status not a number", b"HTTP/1.1 abc OK\r\nContent-Length: 6\r\n\r\nsecret"),
    )
    def test_malformed_response_says_so(self, name: bytes, answer: bytes) -> None:
        """
        If the backend's response cannot be parsed, then the client gets 502
        'backend sent a malformed response' and none of the backend's bytes,
        the access log says the same, and the metrics count it with reason
        malformed; a GET is not retried, since the backend got it.
        """
        proxy = InMemoryProxy([(BLUE, RawBackendFactory(answer))], metrics_for=metrics_for)
        written = get(proxy)
        self.assertTrue(written.startswith(b"HTTP/1.1 502 "), written)
        self.assertTrue(written.endswith(b"\r\n\r\nbackend sent a malformed response\n"), written)
        self.assertNotIn(b"secret", written)
        self.assertEqual(proxy.access[0].outcome, "backend sent a malformed response")
        assert proxy.metrics is not None
        errors = proxy.metrics.registry.get_sample_value(
            "sillyproxy_upstream_errors_total", {"color": "blue", "reason": "malformed"}
        )
        self.assertEqual(errors, 1.0)
        self.assertEqual(proxy.connections("blue"), 1)
        self.assertEqual(proxy.idle_connections("blue"), 0)
        self.flushLoggedErrors()

    def test_backend_closing_is_still_a_reset(self) -> None:
        """If the backend closes after half its headers, then the client gets 'backend closed the connection before responding', counted as reset."""
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n"
        proxy = InMemoryProxy([(BLUE, RawBackendFactory(answer))], metrics_for=metrics_for)
        written = get(proxy)
        self.assertTrue(written.startswith(b"HTTP/1.1 502 "), written)
        self.assertTrue(
            written.endswith(b"\r\n\r\nbackend closed the connection before responding\n"), written
        )
        assert proxy.metrics is not None
        errors = proxy.metrics.registry.get_sample_value(
            "sillyproxy_upstream_errors_total", {"color": "blue", "reason": "reset"}
        )
        self.assertEqual(errors, 1.0)
        self.flushLoggedErrors()


class ConnectionNamedHeaderTests(TableTests):
    @rows(
        (b"one token", b"Connection: X-Secret\r\nX-Secret: s3\r\n"),
        (b"keep-alive and lower case", b"Connection: keep-alive, x-secret\r\nX-SECRET: s3\r\n"),
        (b"close and a name", b"Connection: close, X-Secret\r\nX-Secret: s3\r\n"),
        (b"named before", b"X-Secret: s3\r\nConnection: X-Secret\r\n"),
        (b"two Connection headers", b"Connection: keep-alive\r\nConnection: X-Secret , X-Other\r\nX-Secret: s3\r\nX-Other: o\r\n"),
        (b"repeated header", b"Connection: X-Secret\r\nX-Secret: s3\r\nX-Secret: s4\r\n"),
    )
    def test_named_headers_do_not_reach_the_client(self, name: bytes, headers: bytes) -> None:
        """
        If the backend's Connection header names a header, then the client
        does not get that header (nor Connection), and still gets the
        backend's other headers and body.
        """
        answer = b"HTTP/1.1 200 OK\r\n" + headers + b"X-Kept: yes\r\nContent-Length: 2\r\n\r\nok"
        proxy = InMemoryProxy([(BLUE, RawBackendFactory(answer, close=False))])
        written = get(proxy)
        self.assertTrue(written.startswith(b"HTTP/1.1 200 "), written)
        self.assertTrue(written.endswith(b"\r\n\r\nok"), written)
        names = header_names(written)
        self.assertIn(b"x-kept", names)
        for hidden in (b"x-secret", b"x-other", b"connection"):
            self.assertNotIn(hidden, names)
        self.assertNotIn(b"s3", written)

    @rows(
        (b"empty body", b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: s3\r\nX-Kept: yes\r\nContent-Length: 0\r\n\r\n"),
        (b"no content", b"HTTP/1.1 204 No Content\r\nConnection: X-Secret\r\nX-Secret: s3\r\nX-Kept: yes\r\n\r\n"),
        (
            b"after 100 Continue",
            b"HTTP/1.1 100 Continue\r\nConnection: X-Kept\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: s3\r\nX-Kept: yes\r\nContent-Length: 0\r\n\r\n",
        ),
    )
    def test_response_finished_with_its_headers(self, name: bytes, answer: bytes) -> None:
        """
        If the response is complete with its headers (so Twisted is done
        with its parser before the response arrives), or follows a 100
        Continue, then the final response's Connection tokens still hide
        what they name, and only that.
        """
        proxy = InMemoryProxy([(BLUE, RawBackendFactory(answer, close=False))])
        written = get(proxy)
        self.assertTrue(written.startswith(b"HTTP/1.1 2"), written)
        names = header_names(written)
        self.assertIn(b"x-kept", names)
        self.assertNotIn(b"x-secret", names)

    def test_connection_reused_after_named_headers(self) -> None:
        """If the backend names headers in Connection: keep-alive, X-Secret, then its connection is still pooled and reused."""
        answer = (
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s3\r\n"
            b"Content-Length: 2\r\n\r\nok"
        )
        factory = RawBackendFactory(answer, close=False)
        proxy = InMemoryProxy([(BLUE, factory)])
        # Each RawBackend answers once; give the connection a second answer.
        get(proxy)
        [protocol] = factory.built
        protocol.answer_after = len(protocol.received) + 1
        second = get(proxy)
        self.assertTrue(second.startswith(b"HTTP/1.1 200 "), second)
        self.assertNotIn(b"x-secret", header_names(second))
        self.assertEqual(proxy.connections("blue"), 1)

    def test_named_headers_hidden_after_a_retry(self) -> None:
        """
        If the backend closes a pooled connection as a GET arrives on it, so
        that Twisted's pool sends it again over a new connection, then the
        headers the new response's Connection names are still hidden.
        """
        answer = (
            b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: s3\r\nX-Kept: yes\r\n"
            b"Content-Length: 2\r\n\r\nok"
        )
        factory = RawBackendFactory(answer, close=False)
        proxy = InMemoryProxy([(BLUE, factory)])
        self.assertNotIn(b"x-secret", header_names(get(proxy)))
        [first] = factory.built
        first.answer, first.close, first.answer_after = b"", True, len(first.received) + 1
        second = get(proxy)
        self.assertTrue(second.startswith(b"HTTP/1.1 200 "), second)
        self.assertIn(b"x-kept", header_names(second))
        self.assertNotIn(b"x-secret", header_names(second))
        self.assertEqual((proxy.connections("blue"), len(factory.built[1].reads) > 0), (2, True))


class CommonPathTests(SynchronousTestCase):
    def test_keep_alive_only_changes_nothing(self) -> None:
        """If the backend's Connection says only keep-alive, then every other header it sent reaches the client."""
        answer = (
            b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nKeep-Alive: timeout=5\r\n"
            b"X-A: 1\r\nX-B: 2\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok"
        )
        proxy = InMemoryProxy([(BLUE, RawBackendFactory(answer, close=False))])
        written = get(proxy)
        names = header_names(written)
        for kept in (b"x-a", b"x-b", b"set-cookie"):
            self.assertIn(kept, names)
        self.assertEqual(names.count(b"set-cookie"), 2)
        self.assertNotIn(b"keep-alive", names)


class ConnectionCloseTokenTests(TableTests):
    @rows(
        (b"Connection: close, X-Secret\r\n",),
        (b"Connection: Close\r\n",),
        (b"Connection: keep-alive\r\nConnection: close\r\n",),
    )
    def test_backend_asking_to_close_is_not_pooled(self, connection: bytes) -> None:
        """If the backend's Connection header has the close token (in any case, among others), then its connection is closed, never pooled."""
        answer = b"HTTP/1.1 200 OK\r\n" + connection + b"Content-Length: 2\r\n\r\nok"
        factory = RawBackendFactory(answer, close=False)
        proxy = InMemoryProxy([(BLUE, factory)])
        self.assertTrue(get(proxy).startswith(b"HTTP/1.1 200 "))
        self.assertEqual(proxy.idle_connections("blue"), 0)
        self.assertEqual(proxy.open_connections("blue"), 0)
