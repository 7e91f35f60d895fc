"""Tests of bounded memory and disk: body limits, backpressure, and the backend and client connection pools."""

from __future__ import annotations

import gc

import treq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IResponse
from twisted.web.server import Site
from zope.interface import implementer

from sillyproxy._config import parse_backend_url
from sillyproxy._pool import IDLE_BACKEND_TIMEOUT, backend_address_factory
from sillyproxy._http2 import ProxyH2Connection
from sillyproxy._site import LINGER_SECONDS, ProxyChannel, ProxySite

from .support import (
    CaptureResource,
    HalfResponse,
    HeldResource,
    InMemoryNetwork,
    InMemoryProxy,
    ScriptedAgent,
    backend,
    closed,
)

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


class CyclicGarbageTests(SynchronousTestCase):
    def test_answered_request_freed_by_reference_counting(self) -> None:
        """
        If a request has been forwarded and answered, then its exchange,
        relay and request are freed as soon as they are done with: the
        cyclic garbage collector, whose passes grow with what it has to
        look through, finds none of them.
        """
        proxy = InMemoryProxy([(BLUE, CaptureResource())])
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        self.addCleanup(gc.garbage.clear)
        self.addCleanup(gc.set_debug, 0)
        for _ in range(3):
            answer = proxy.client.get("http://proxy/x")
            proxy.flush()
            body = proxy.client.content(self.successResultOf(answer))
            proxy.flush()
            self.assertEqual(self.successResultOf(body), b"ok")
            del answer, body
        gc.collect()
        # Connections may end in cycles (a transport and its protocol hold
        # each other); they are few and long-lived.  Requests are many.
        per_request = {"_Exchange", "BodyRelay", "ProxyRequest"}
        left = sorted({type(thing).__qualname__ for thing in gc.garbage} & per_request)
        self.assertEqual(left, [])


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


class PoolHarness:
    """
    One backend address as backend_address_factory builds it (an
    AddressAgent over a RetirablePool), whose connections reach a backend
    that holds each request until the test answers it.
    """

    def __init__(self, keepalive: int = 100) -> None:
        self.clock = Clock()
        self.network = InMemoryNetwork(self.clock)
        self.held = HeldResource()
        self.network.listen("10.0.0.1", 8080, Site(self.held, reactor=MemoryReactorClock()))
        make = backend_address_factory(
            self.clock, parse_backend_url("http://svc:8080"), keepalive, 5.0, connect_reactor=self.network
        )
        self.address = make("10.0.0.1")
        self.bodies: list[Deferred[bytes]] = []

    def send(self, method: bytes = b"GET") -> Deferred[bytes]:
        """Send a request; its body once it has been answered."""
        body = self.address.agent.request(method, b"http://svc:8080/").addCallback(treq.content)
        self.bodies.append(body)
        self.network.flush()
        return body

    def answer(self, index: int) -> None:
        self.held.answer(b"answer %d" % index, index)
        self.network.flush()

    def closed(self) -> list[bool]:
        """For each connection made so far, whether it has closed."""
        return [closed(pump) for pump in self.network.opened[("10.0.0.1", 8080)]]


class RetirablePoolTests(SynchronousTestCase):
    def test_retired_pool_closes_returning_connections(self) -> None:
        """If an address is retired, then its idle connection closes at once, and one busy with a request closes once answered instead of idling."""
        harness = PoolHarness()
        busy = harness.send()
        harness.send()
        harness.answer(1)
        self.assertEqual((harness.closed(), harness.address.idle_connections()), ([False, False], 1))
        harness.address.retire()
        harness.network.flush()
        self.assertEqual(harness.closed(), [False, True])
        harness.answer(0)
        self.assertEqual(self.successResultOf(busy), b"answer 0")
        self.assertEqual((harness.closed(), harness.address.idle_connections()), ([True, True], 0))

    def test_idle_connections_close_after_the_idle_timeout(self) -> None:
        """If a pooled connection idles past the timeout, then it is closed; one that went idle later is not."""
        harness = PoolHarness()
        clock = harness.clock
        harness.send()
        harness.send()
        harness.answer(0)
        clock.advance(20)
        harness.answer(1)
        clock.advance(IDLE_BACKEND_TIMEOUT - 21)
        self.assertEqual(harness.closed(), [False, False], "closed before its time was up")
        # Past the timeout and the quarter of it a sweep may lag.
        clock.advance(IDLE_BACKEND_TIMEOUT * 1.25 - (IDLE_BACKEND_TIMEOUT - 1) + 0.5)
        harness.network.flush()
        self.assertEqual((harness.closed(), harness.address.idle_connections()), ([True, False], 1))
        clock.advance(IDLE_BACKEND_TIMEOUT)
        harness.network.flush()
        self.assertEqual((harness.closed(), harness.address.idle_connections()), ([True, True], 0))
        self.assertEqual(clock.getDelayedCalls(), [], "the sweep stops when nothing idles")

    def test_idle_connections_beyond_the_limit_close_oldest_first(self) -> None:
        """If more connections go idle than SILLYPROXY_BACKEND_KEEPALIVE, then the one idle longest is closed."""
        harness = PoolHarness(keepalive=2)
        for _ in range(3):
            harness.send()
        for index in (1, 0, 2):
            harness.answer(index)
        self.assertEqual(harness.closed(), [False, True, False])
        self.assertEqual(harness.address.idle_connections(), 2)


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


class AddressAgentTests(SynchronousTestCase):
    def test_unsendable_request_fails_without_taking_a_connection(self) -> None:
        """If the method is not a valid token, then the request fails, the idle connection stays pooled, and the next request uses it."""
        harness = PoolHarness()
        harness.send()
        harness.answer(0)
        self.assertEqual(harness.address.idle_connections(), 1)
        failure = self.failureResultOf(harness.send(b"GE T"), ValueError)
        self.assertIn("method", str(failure.value).lower())
        self.assertEqual(harness.address.idle_connections(), 1)
        reused = harness.send()
        harness.answer(1)
        self.assertEqual(self.successResultOf(reused), b"answer 1")
        self.assertEqual(harness.closed(), [False])


class ProtocolNegotiationTests(SynchronousTestCase):
    def test_tls_offers_h2_then_http11(self) -> None:
        """If a TLS client asks for a protocol over ALPN, then h2 is preferred, then http/1.1."""
        self.assertEqual(ProxySite(None).acceptableProtocols(), [b"h2", b"http/1.1"])

    def connect(self, negotiated: bytes | None):  # type: ignore[no-untyped-def]
        site = ProxySite(None, reactor=Clock())
        protocol = site.buildNegotiatedProtocol(IPv4Address("TCP", "127.0.0.9", 40000))
        transport = StringTransport()
        transport.negotiatedProtocol = negotiated  # type: ignore[attr-defined]
        protocol.makeConnection(transport)
        return site, protocol, transport

    def test_alpn_h2_makes_an_http2_connection(self) -> None:
        """If ALPN chose h2, then at the first bytes the connection becomes HTTP/2, and the site tracks it instead of the HTTP/1.1 channel."""
        site, protocol, transport = self.connect(b"h2")
        [before] = site.channels
        self.assertIsInstance(before, ProxyChannel)
        protocol.dataReceived(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        [after] = site.channels
        self.assertIsInstance(after, ProxyH2Connection)
        self.assertIs(transport.producer, after)

    def test_no_alpn_stays_http11(self) -> None:
        """If ALPN chose http/1.1, or nothing, then the connection stays the HTTP/1.1 channel it started as (so its header timeout ran from the start)."""
        for negotiated in (b"http/1.1", None):
            site, protocol, _ = self.connect(negotiated)
            [channel] = site.channels
            protocol.dataReceived(b"GET / HTTP/1.1\r\n")
            self.assertEqual(site.channels, {channel})
            self.assertIsInstance(channel, ProxyChannel)
