"""
In-memory tests of what an adversarial client or backend tries: stalled
bodies, oversized lines and chunks, odd methods, abandoned requests and
forged reason phrases; each is answered, and logged and counted
(trial can run these too).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet import error
from twisted.internet.defer import succeed
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IResponse
from zope.interface import implementer

from sillyproxy import _relay
from sillyproxy._metrics import ProxyMetrics
from sillyproxy._routing import Router

from .support import (
    CaptureResource,
    HalfResponse,
    InMemoryProxy,
    RawBackendFactory,
    ScriptedAgent,
    TableTests,
    backend,
    failing_agent,
    rows,
)

BLUE = backend("blue", "http://blue.internal:8080")
PREFIXED = backend("blue", "http://blue.internal:8080/prefix/")


def _metrics(router: Router) -> ProxyMetrics:
    return ProxyMetrics(CollectorRegistry(), router, "test", lambda: {}, lambda: 0.0)


def _scrape(proxy: InMemoryProxy) -> str:
    assert proxy.metrics is not None
    return generate_latest(proxy.metrics.registry).decode()


class RequestBodyTimeoutTests(SynchronousTestCase):
    def test_stalled_body_gets_408(self) -> None:
        """If a client declares a body, sends part of it and goes quiet past the body timeout, then 408 and the connection closes; nothing reaches the backend."""
        capture = CaptureResource()
        proxy = InMemoryProxy([(BLUE, capture)])
        written, transport = proxy.raw(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789",
            body_timeout=5,
        )
        self.assertEqual(written, b"")
        proxy.clock.advance(4)
        self.assertEqual(transport.value(), b"")
        proxy.clock.advance(2.5)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 408 "), transport.value())
        self.assertTrue(transport.value().endswith(b"request body stalled\n"))
        self.assertTrue(transport.write_closed)
        self.assertEqual(capture.seen, [])
        [record] = proxy.access
        self.assertEqual((record.status, record.color, record.method), (408, "-", b"POST"))

    def test_body_that_keeps_coming_is_not_cut(self) -> None:
        """If each piece of a body arrives within the body timeout, then however long the whole takes, it is forwarded."""
        capture = CaptureResource()
        proxy = InMemoryProxy([(BLUE, capture)])
        _, transport = proxy.raw(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n", body_timeout=5
        )
        for byte in b"0123456789":
            proxy.clock.advance(4)
            transport.protocol.dataReceived(bytes([byte]))
        proxy.flush()
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 "), transport.value())
        self.assertEqual(capture.seen[0].body, b"0123456789")

    def test_stalled_chunked_body_gets_408(self) -> None:
        """If a chunked body stops mid-chunk, then 408 after the body timeout."""
        proxy = InMemoryProxy([(BLUE, CaptureResource())])
        _, transport = proxy.raw(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
            body_timeout=5,
        )
        proxy.clock.advance(6.5)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 408 "), transport.value())


class OversizeTests(SynchronousTestCase):
    def test_chunk_larger_than_max_body_refused_at_once(self) -> None:
        """If a chunk-size line declares more than the body limit, then 413 before any of its bytes arrive."""
        capture = CaptureResource()
        proxy = InMemoryProxy([(BLUE, capture)])
        written, _ = proxy.raw(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n",
            max_body=1000,
        )
        self.assertTrue(written.startswith(b"HTTP/1.1 413 "), written)
        self.assertTrue(written.endswith(b"request body is larger than the limit of 1000 bytes\n"))
        self.assertEqual(capture.seen, [])

    def test_chunks_adding_up_past_max_body_refused_at_the_size_line(self) -> None:
        """If earlier chunks (600 bytes) plus the next declared size (401) exceed the limit (1000), then 413 at that size line."""
        proxy = InMemoryProxy([(BLUE, CaptureResource())])
        written, _ = proxy.raw(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"258\r\n" + b"x" * 600 + b"\r\n191\r\n",
            max_body=1000,
        )
        self.assertTrue(written.startswith(b"HTTP/1.1 413 "), written)

    def test_chunk_within_max_body_is_forwarded(self) -> None:
        """If chunks stay within the limit, then the body is forwarded."""
        capture = CaptureResource()
        proxy = InMemoryProxy([(BLUE, capture)])
        written, _ = proxy.raw(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3e8\r\n" + b"x" * 1000 + b"\r\n0\r\n\r\n",
            max_body=1000,
        )
        self.assertTrue(written.startswith(b"HTTP/1.1 200 "), written)
        self.assertEqual(len(capture.seen[0].body), 1000)

    def test_absurd_chunk_size_refused_without_a_limit(self) -> None:
        """If a chunk-size is too large to be a real length, then 413 at once, even with no body limit."""
        proxy = InMemoryProxy([(BLUE, CaptureResource())])
        written, _ = proxy.raw(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF5\r\n"
        )
        self.assertTrue(written.startswith(b"HTTP/1.1 413 "), written)

    def test_request_line_too_long_gets_414(self) -> None:
        """If the request line is longer than 16 KiB, then 414 (not a silent close)."""
        proxy = InMemoryProxy([(BLUE, CaptureResource())])
        written, transport = proxy.raw(b"GET /" + b"a" * 17000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(written.startswith(b"HTTP/1.1 414 URI Too Long\r\n"), written[:100])
        self.assertTrue(transport.write_closed)
        [record] = proxy.access
        self.assertEqual((record.status, record.method, record.color), (414, b"GET", "-"))

    def test_request_line_too_long_without_line_end_gets_414(self) -> None:
        """If 16 KiB of request line arrive with no line end yet, then 414 at once."""
        proxy = InMemoryProxy([(BLUE, CaptureResource())])
        written, _ = proxy.raw(b"GET /" + b"a" * 17000)
        self.assertTrue(written.startswith(b"HTTP/1.1 414 "), written[:100])

    def test_header_line_too_long_gets_431(self) -> None:
        """If one header line is longer than 16 KiB, then 431."""
        proxy = InMemoryProxy([(BLUE, CaptureResource())])
        written, _ = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n")
        self.assertTrue(
            written.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), written[:100]
        )

    def test_headers_too_large_in_total_get_431(self) -> None:
        """If the header lines add up to more than 16 KiB, then 431."""
        proxy = InMemoryProxy([(BLUE, CaptureResource())])
        headers = b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 1000) for i in range(20))
        written, _ = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n")
        self.assertTrue(written.startswith(b"HTTP/1.1 431 "), written[:100])


class RefusalAccountingTests(SynchronousTestCase):
    def test_refused_requests_are_logged_and_counted_as_no_colour(self) -> None:
        """If the channel refuses a request itself, then it gets an access record with colour '-' and is counted under color="none"."""
        proxy = InMemoryProxy([(BLUE, CaptureResource())], metrics_for=_metrics)
        written, _ = proxy.raw(b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\nUser-Agent: probe\r\n\r\n")
        self.assertTrue(written.startswith(b"HTTP/1.1 400 "), written)
        [record] = proxy.access
        self.assertEqual(
            (record.method, record.target, record.color, record.status, record.outcome, record.client),
            (b"GET", b"/x", "-", 400, "more than one Host header", "127.0.0.9"),
        )
        self.assertEqual(record.body_bytes, len(b"more than one Host header\n"))
        self.assertIn('sillyproxy_requests_total{code="400",color="none",method="GET"} 1.0', _scrape(proxy))

    def test_twisted_web_refusals_get_a_reason_and_a_record(self) -> None:
        """If twisted.web itself finds a request malformed (a header without a colon), then 400 with a reason, logged."""
        proxy = InMemoryProxy([(BLUE, CaptureResource())])
        written, _ = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\nNoColonHere\r\n\r\n")
        self.assertTrue(written.startswith(b"HTTP/1.1 400 "), written)
        self.assertTrue(written.endswith(b"malformed request\n"), written)
        self.assertEqual([r.status for r in proxy.access], [400])

    def test_header_timeout_is_logged_with_its_duration(self) -> None:
        """If request headers time out, then the 408 is logged, timed from the request's first byte."""
        proxy = InMemoryProxy([(BLUE, CaptureResource())])
        proxy.clock.advance(100)
        written, transport = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n", header_timeout=8)
        for _ in range(10):
            proxy.clock.advance(1)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 408 "), transport.value())
        [record] = proxy.access
        self.assertEqual((record.status, record.color, record.time), (408, "-", 100))
        self.assertGreaterEqual(record.duration, 8)

    def test_connection_that_sends_nothing_is_closed_quietly(self) -> None:
        """If a connection sends no byte within the header timeout (a preconnect), then it is closed with no answer, no log line and no count."""
        proxy = InMemoryProxy([(BLUE, CaptureResource())], metrics_for=_metrics)
        written, transport = proxy.raw(b"", header_timeout=8)
        for _ in range(10):
            proxy.clock.advance(1)
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(proxy.access, [])
        self.assertNotIn("sillyproxy_requests_total{", _scrape(proxy))

    def test_refused_request_line_is_logged_safely(self) -> None:
        """If a request line twisted.web cannot parse is refused, then its target is logged with spaces and control bytes escaped."""
        proxy = InMemoryProxy([(BLUE, CaptureResource())])
        written, _ = proxy.raw(b"GET /a b\x1b[31m HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(written.startswith(b"HTTP/1.1 400 "), written)
        [record] = proxy.access
        self.assertEqual((record.method, record.target), (b"GET", b"/a%20b%1B[31m"))


class MethodTests(TableTests):
    @rows(
        (b"TRACE / HTTP/1.1\r\nHost: a\r\nCookie: secret=1\r\n\r\n", b"TRACE is not supported\n"),
        (b"CONNECT elsewhere:443 HTTP/1.1\r\nHost: elsewhere:443\r\n\r\n", b"CONNECT is not supported\n"),
    )
    def test_refused_methods_get_405_with_allow(self, raw: bytes, message: bytes) -> None:
        """If a client sends TRACE or CONNECT, then 405 with Allow, and no backend is contacted."""
        agent = ScriptedAgent()
        proxy = InMemoryProxy(agent=agent, extra_backends=[BLUE])
        written, _ = proxy.raw(raw)
        self.assertTrue(written.startswith(b"HTTP/1.1 405 "), written)
        self.assertIn(b"\r\nAllow: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS\r\n", written)
        self.assertTrue(written.endswith(message), written)
        self.assertEqual(agent.calls, [])
        self.assertEqual([(r.status, r.color) for r in proxy.access], [(405, "-")])


class ClientClosedTests(SynchronousTestCase):
    def test_client_leaving_before_the_answer_is_499(self) -> None:
        """If the client leaves before the backend answers, then the request is logged and counted as 499, not 200."""
        agent = ScriptedAgent()
        proxy = InMemoryProxy(agent=agent, extra_backends=[BLUE], metrics_for=_metrics)
        _, transport = proxy.raw(b"GET /abandon HTTP/1.1\r\nHost: a\r\n\r\n")
        transport.protocol.connectionLost(Failure(error.ConnectionDone()))
        [record] = proxy.access
        self.assertEqual((record.status, record.outcome, record.color), (499, "client closed", "blue"))
        scraped = _scrape(proxy)
        self.assertIn('sillyproxy_requests_total{code="499",color="blue",method="GET"} 1.0', scraped)
        self.assertNotIn('code="200"', scraped)

    def test_client_leaving_mid_body_keeps_the_status_sent(self) -> None:
        """If the client leaves after the response began, then the status it was sent is logged, with the reason."""
        response = HalfResponse()
        response.deliverBody = lambda protocol: (  # type: ignore[method-assign]
            protocol.makeConnection(response.backend_transport),
            protocol.dataReceived(b"part"),
        )
        proxy = InMemoryProxy(agent=ScriptedAgent(lambda: succeed(response)), extra_backends=[BLUE])
        written, transport = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(written.startswith(b"HTTP/1.1 200 "), written)
        transport.protocol.connectionLost(Failure(error.ConnectionLost()))
        [record] = proxy.access
        self.assertEqual((record.status, record.outcome), (200, "client closed"))


class ReasonPhraseTests(TableTests):
    @rows(
        (b"OK\rSet-Cookie: injected=1", b"HTTP/1.1 200 OK\r\n"),
        (b"Fine\x00", b"HTTP/1.1 200 OK\r\n"),
        (b"Caf\xc3\xa9", b"HTTP/1.1 200 OK\r\n"),
        (b"Custom Words", b"HTTP/1.1 200 Custom Words\r\n"),
    )
    def test_only_plain_reason_phrases_are_relayed(self, phrase: bytes, status_line: bytes) -> None:
        """If a backend's reason phrase has a CR, NUL or any byte but visible ASCII and spaces, then the client gets the standard phrase instead."""
        raw_response = b"HTTP/1.1 200 " + phrase + b"\r\nContent-Length: 2\r\n\r\nok"
        proxy = InMemoryProxy([(BLUE, RawBackendFactory(raw_response))])
        written, _ = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(written.startswith(status_line), written)
        self.assertNotIn(b"injected", written)
        self.assertNotIn(b"\x00", written)


class HostAndPathTests(TableTests):
    @rows(
        (b"Host: \r\n",),
        (b"Host: a b\r\n",),
        (b"Host: evil.com/@x\r\n",),
        (b"Host: example.com:abc\r\n",),
    )
    def test_invalid_host_gets_400(self, host_line: bytes) -> None:
        """If Host is empty or not a valid host[:port], then 400 and nothing is forwarded."""
        capture = CaptureResource()
        proxy = InMemoryProxy([(BLUE, capture)])
        written, _ = proxy.raw(b"GET / HTTP/1.1\r\n" + host_line + b"\r\n")
        self.assertTrue(written.startswith(b"HTTP/1.1 400 "), written)
        self.assertEqual(capture.seen, [])

    @rows(
        (b"/../admin/secret",),
        (b"/..%2fadmin",),
        (b"/%2e%2e/admin",),
        (b"http://blue.internal/../admin",),
    )
    def test_dot_segments_refused_under_a_base_path(self, target: bytes) -> None:
        """If a colour has a base path, then a target with a . or .. segment (however encoded) gets 400 and never reaches the backend."""
        capture = CaptureResource()
        proxy = InMemoryProxy([(PREFIXED, capture)])
        written, _ = proxy.raw(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(written.startswith(b"HTTP/1.1 400 "), written)
        self.assertEqual(capture.seen, [])

    @rows(
        (PREFIXED, b"/a%2fb", b"/prefix/a%2fb"),
        (PREFIXED, b"/a/b..c", b"/prefix/a/b..c"),
        (BLUE, b"/../admin", b"/../admin"),
        (backend("blue", "http://blue.internal:8080/"), b"/a/../b", b"/a/../b"),
    )
    def test_other_targets_pass_byte_for_byte(self, served, target: bytes, seen: bytes) -> None:  # type: ignore[no-untyped-def]
        """If the path has no dot segment, or the colour has no base path, then the target is forwarded byte for byte."""
        capture = CaptureResource()
        proxy = InMemoryProxy([(served, capture)])
        written, _ = proxy.raw(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(written.startswith(b"HTTP/1.1 200 "), written)
        self.assertEqual(capture.seen[0].uri, seen)


class SendTimeoutTests(SynchronousTestCase):
    """The client holds the relay paused (its buffers are full); what it takes decides."""

    def relaying(self, taken: list[int] | None = None):  # type: ignore[no-untyped-def]
        @implementer(IResponse)
        class Endless(HalfResponse):
            def deliverBody(self, protocol):  # type: ignore[no-untyped-def]
                protocol.makeConnection(self.backend_transport)
                protocol.dataReceived(b"first")

        response = Endless()
        if taken is not None:
            self.patch(_relay, "bytes_acked", lambda transport: taken[0])
        proxy = InMemoryProxy(
            agent=ScriptedAgent(lambda: succeed(response)), extra_backends=[BLUE], send_timeout=10
        )
        written, transport = proxy.raw(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(written.endswith(b"first"), written)
        # The client's socket is full: the channel pauses the relay.
        transport.producer.pauseProducing()
        self.assertEqual(response.backend_transport.producerState, "paused")
        return proxy, transport, response

    def test_client_that_takes_nothing_is_cut_off(self) -> None:
        """If the client takes none of the response for the send timeout, then both connections close and the request is logged as such."""
        proxy, transport, response = self.relaying(taken=[5000])
        self.tick(proxy, 9)
        self.assertFalse(transport.disconnected)
        self.tick(proxy, 3)
        self.assertTrue(transport.disconnected)
        self.assertEqual(response.backend_transport.producerState, "stopped")
        transport.protocol.connectionLost(Failure(error.ConnectionLost()))
        [record] = proxy.access
        self.assertEqual((record.status, record.outcome), (200, "client stopped reading"))

    def test_client_that_keeps_taking_is_not_cut_off(self) -> None:
        """If the kernel says the client keeps acknowledging bytes, then however long the relay stays paused, nothing is closed."""
        taken = [5000]
        proxy, transport, response = self.relaying(taken=taken)
        for _ in range(10):
            taken[0] += 1024
            self.tick(proxy, 6)
        self.assertFalse(transport.disconnected)
        self.assertEqual(response.backend_transport.producerState, "paused")

    def test_without_a_kernel_count_a_resume_is_progress(self) -> None:
        """If the transport has no TCP socket to ask (UNIX, in memory), then each resume counts as progress."""
        proxy, transport, response = self.relaying()
        for _ in range(5):
            self.tick(proxy, 6)
            transport.producer.resumeProducing()
            transport.producer.pauseProducing()
        self.assertFalse(transport.disconnected)
        self.tick(proxy, 12)
        self.assertTrue(transport.disconnected)

    def tick(self, proxy: InMemoryProxy, seconds: int) -> None:
        for _ in range(seconds):
            proxy.clock.advance(1)


class FailoverBasePathTests(SynchronousTestCase):
    def test_failover_onto_a_base_path_is_checked_too(self) -> None:
        """If the first colour has no base path and fails before sending, then a retry onto a colour with one still refuses a dot segment."""
        capture = CaptureResource()
        green = backend("green", "http://green.internal:8080/prefix/")
        proxy = InMemoryProxy(
            [(green, capture)],
            agent=failing_agent(error.ConnectionRefusedError()),
            extra_backends=[BLUE],
            # Choose the last colour first: blue, then green.
            randbelow=lambda total: total - 1,
        )
        written, _ = proxy.raw(b"GET /../admin HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(written.startswith(b"HTTP/1.1 400 "), written)
        self.assertEqual(capture.seen, [])
