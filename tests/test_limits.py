"""Tests of bounded memory and disk: body limits, backpressure, and the backend and client connection pools."""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IResponse
from zope.interface import implementer

from sillyproxy._pool import AddressAgent, RetirablePool
from sillyproxy._site import LINGER_SECONDS

from .support import CaptureResource, InMemoryProxy, ScriptedAgent, backend
from .test_forward import HalfResponse

BLUE = backend("blue", "http://blue.internal:8080")


class BodyLimitTests(SynchronousTestCase):
    def test_declared_length_over_limit(self) -> None:
        """If Content-Length is over the limit, then 413 at once, no 100-continue, nothing forwarded."""
        agent = ScriptedAgent()
        proxy = InMemoryProxy(agent=agent, extra_backends=[BLUE])
        written, transport = proxy.raw(
            b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n"
            b"Expect: 100-continue\r\n\r\n",
            max_body=1000,
        )
        self.assertTrue(written.startswith(b"HTTP/1.1 413 Content Too Large\r\n"), written)
        self.assertNotIn(b"100 Continue", written)
        self.assertIn(b"Connection: close\r\n", written)
        self.assertTrue(written.endswith(b"request body is larger than the limit of 1000 bytes\n"))
        self.assertTrue(transport.write_closed)
        # The rest of the body is read and thrown away, then the connection ends.
        transport.protocol.dataReceived(b"x" * 1001)
        self.assertEqual(agent.calls, [])
        self.assertFalse(transport.disconnected)
        proxy.clock.advance(LINGER_SECONDS)
        self.assertTrue(transport.disconnected)

    def test_declared_length_at_limit(self) -> None:
        """If Content-Length equals the limit, then the body is forwarded."""
        capture = CaptureResource()
        proxy = InMemoryProxy([(BLUE, capture)])
        written, _ = proxy.raw(
            b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789",
            max_body=10,
        )
        self.assertTrue(written.startswith(b"HTTP/1.1 200 "), written)
        self.assertEqual(capture.seen[0].body, b"0123456789")

    def test_chunked_over_limit(self) -> None:
        """If a chunked body goes over the limit, then 413, the connection closes, and the spool stops at the limit."""
        agent = ScriptedAgent()
        proxy = InMemoryProxy(agent=agent, extra_backends=[BLUE])
        written, transport = proxy.raw(
            b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"6\r\n012345\r\n",
            max_body=10,
        )
        self.assertEqual(written, b"")
        # The transport's producer is the HTTP channel, as with real TCP.
        request = transport.producer.requests[-1]
        transport.protocol.dataReceived(b"6\r\n6789ab\r\n0\r\n\r\n")
        written = transport.value()
        self.assertTrue(written.startswith(b"HTTP/1.1 413 "), written)
        request.content.seek(0)
        self.assertEqual(request.content.read(), b"012345")
        self.assertEqual(agent.calls, [])
        proxy.clock.advance(LINGER_SECONDS)
        self.assertTrue(transport.disconnected)

    def test_no_limit(self) -> None:
        """If the limit is 0, then any declared length is accepted."""
        capture = CaptureResource()
        proxy = InMemoryProxy([(BLUE, capture)])
        written, _ = proxy.raw(
            b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", max_body=0
        )
        self.assertTrue(written.startswith(b"HTTP/1.1 200 "), written)


@implementer(IResponse)
class OpenResponse(HalfResponse):
    """A response that sends some body and then stays open."""

    def deliverBody(self, protocol):  # type: ignore[no-untyped-def]
        protocol.makeConnection(self.backend_transport)
        protocol.dataReceived(b"x" * 1000)


class BackpressureTests(SynchronousTestCase):
    def test_slow_client_pauses_backend(self) -> None:
        """If the client's socket is full, then reading from the backend pauses until it drains."""
        response = OpenResponse()
        proxy = InMemoryProxy(agent=ScriptedAgent(lambda: succeed(response)), extra_backends=[BLUE])
        _, transport = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        # The channel registered itself as the transport's producer.
        channel = transport.producer
        self.assertEqual(response.backend_transport.producerState, "producing")
        # What a TCP transport does when its send buffer fills, and empties.
        channel.pauseProducing()
        self.assertEqual(response.backend_transport.producerState, "paused")
        channel.resumeProducing()
        self.assertEqual(response.backend_transport.producerState, "producing")


class Quiescent:
    """A pooled connection, as far as the pool looks at one."""

    state = "QUIESCENT"

    def __init__(self) -> None:
        self.transport = StringTransport()

    def abort(self):  # type: ignore[no-untyped-def]
        self.transport.abortConnection()
        return succeed(None)


class RetirablePoolTests(SynchronousTestCase):
    def test_retired_pool_closes_returning_connections(self) -> None:
        """If an address is retired, then a connection finishing its request closes instead of idling."""
        from twisted.internet.task import Clock

        pool = RetirablePool(Clock(), persistent=True)
        idle = Quiescent()
        pool._putConnection(("http", b"h", 80), idle)
        self.assertFalse(idle.transport.disconnecting)
        pool.retire()
        self.assertTrue(idle.transport.disconnecting)
        returning = Quiescent()
        pool._putConnection(("http", b"h", 80), returning)
        self.assertTrue(returning.transport.disconnecting)

    def test_idle_connections_close_after_the_idle_timeout(self) -> None:
        """If a pooled connection idles past the timeout, then it is closed; one in use meanwhile is not."""
        from twisted.internet.task import Clock

        clock = Clock()
        pool = RetirablePool(clock, persistent=True)
        pool.cachedConnectionTimeout = 30
        key = ("http", b"h", 80)
        first, second = Quiescent(), Quiescent()
        pool._putConnection(key, first)
        clock.advance(20)
        pool._putConnection(key, second)
        clock.advance(9)
        self.assertFalse(first.transport.disconnecting, "closed before its 30 s were up")
        clock.advance(9)  # 38 s: past 30 s and the quarter a sweep may lag
        self.assertTrue(first.transport.disconnecting)
        self.assertFalse(second.transport.disconnecting)
        self.assertEqual(pool.idle_connections(), 1)
        clock.advance(30)
        self.assertTrue(second.transport.disconnecting)
        self.assertEqual(pool.idle_connections(), 0)
        self.assertEqual(clock.getDelayedCalls(), [], "the sweep stops when nothing idles")

    def test_idle_connections_beyond_the_limit_close_oldest_first(self) -> None:
        """If more connections go idle than the pool keeps, then the oldest idle one is closed."""
        from twisted.internet.task import Clock

        pool = RetirablePool(Clock(), persistent=True)
        pool.maxPersistentPerHost = 2
        key = ("http", b"h", 80)
        connections = [Quiescent() for _ in range(3)]
        for connection in connections:
            pool._putConnection(key, connection)
        self.assertEqual([c.transport.disconnecting for c in connections], [True, False, False])
        self.assertEqual(pool.idle_connections(), 2)


class IdleClientTests(SynchronousTestCase):
    def test_idle_keep_alive_connection_closes_after_the_idle_timeout(self) -> None:
        """If a keep-alive client sends nothing after a response for the idle timeout, then the proxy closes the connection."""
        proxy = InMemoryProxy(backends=[(BLUE, CaptureResource())])
        written, transport = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", idle_timeout=20)
        self.assertTrue(written.startswith(b"HTTP/1.1 200 "), written)
        proxy.clock.advance(19)
        self.assertFalse(transport.disconnecting)
        # A request in time resets the wait.
        transport.clear()
        transport.protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        proxy.flush()
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 "))
        proxy.clock.advance(19)
        self.assertFalse(transport.disconnecting)
        proxy.clock.advance(6)  # past 20 s and the quarter the sweep may lag
        self.assertTrue(transport.disconnecting)

    def test_connection_busy_with_a_request_is_not_idle(self) -> None:
        """If the backend takes longer than the idle timeout to answer, then the client connection stays open."""
        agent = ScriptedAgent()
        proxy = InMemoryProxy(agent=agent, extra_backends=[BLUE])
        _, transport = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", idle_timeout=20)
        self.assertEqual(len(agent.calls), 1)
        proxy.clock.advance(50)
        self.assertFalse(transport.disconnecting)


class Pooled(Quiescent):
    """A pooled connection that records the requests sent over it."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[object] = []

    def request(self, request):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        return Deferred()


class AddressAgentTests(SynchronousTestCase):
    def test_unsendable_request_fails_without_taking_a_connection(self) -> None:
        """If the method is not a valid token, then the request fails and the idle connection stays pooled."""
        from twisted.internet.task import Clock

        origin = b"http://h:80"
        pool = RetirablePool(Clock(), persistent=True)
        idle = Pooled()
        pool._putConnection(origin, idle)
        # Never dialled: the pool has an idle connection for the key.
        agent = AddressAgent(pool, endpoint=object(), origin=origin)  # type: ignore[arg-type]
        failure = self.failureResultOf(agent.request(b"GE T", origin + b"/x"), ValueError)
        self.assertIn("method", str(failure.value).lower())
        self.assertEqual(idle.requests, [])
        self.assertEqual(pool.idle_connections(), 1)


def test_tls_offers_only_http11() -> None:
    """If a TLS client asks for a protocol over ALPN, then only http/1.1 is offered, even with the h2 package installed."""
    from twisted.web import http

    from sillyproxy._site import ProxySite

    saved = http.H2_ENABLED
    http.H2_ENABLED = True
    try:
        assert ProxySite(None).acceptableProtocols() == [b"http/1.1"]
    finally:
        http.H2_ENABLED = saved
