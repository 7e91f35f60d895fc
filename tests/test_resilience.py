"""In-memory tests of timeouts, passive health, retries and failover."""

from __future__ import annotations

from twisted.internet import error
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseNeverReceived
from twisted.web.iweb import IResponse
from zope.interface import implementer

from sillyproxy._address import BackendAddress
from sillyproxy._upstream import ResolvingUpstream

from .support import (
    AgentUpstream,
    CaptureResource,
    FakeResolver,
    HalfResponse,
    InMemoryProxy,
    ScriptedAgent,
    backend,
)

BLUE = backend("blue", "http://blue.internal:8080")
GREEN = backend("green", "http://green.internal:8080")


def get(proxy: InMemoryProxy, request: bytes = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n") -> bytes:
    written, _ = proxy.raw(request)
    return written


@implementer(IResponse)
class Stalls(HalfResponse):
    """A response that sends a little of its body and then nothing more."""

    def deliverBody(self, protocol):  # type: ignore[no-untyped-def]
        protocol.makeConnection(self.backend_transport)
        protocol.dataReceived(b"start")


class TimeoutTests(SynchronousTestCase):
    def test_response_timeout_gives_504(self) -> None:
        """If the backend sends no response headers in time, then the client gets a 504 and the request is cancelled."""
        agent = ScriptedAgent()
        proxy = InMemoryProxy(agent=agent, extra_backends=[BLUE], response_timeout=3)
        _, transport = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        for _ in range(29):
            proxy.clock.advance(0.1)
        self.assertEqual(transport.value(), b"")
        # Enforced by a sweep, to within a quarter of the timeout.
        for _ in range(8):
            proxy.clock.advance(0.1)
        self.assertEqual(agent.calls[0].cancelled, [True])
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 504 "))
        self.assertTrue(transport.value().endswith(b"backend did not answer in time\n"))

    def test_stalled_body_aborts_client(self) -> None:
        """If the backend stalls mid-body while the client keeps up, then the client connection is aborted."""

        response = Stalls()
        proxy = InMemoryProxy(
            agent=ScriptedAgent(lambda: succeed(response)), extra_backends=[BLUE], idle_timeout=5
        )
        _, transport = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        proxy.clock.advance(4.5)
        self.assertFalse(transport.disconnected)
        # Found by a sweep within a quarter of the timeout (at most 1 s).
        proxy.clock.advance(1.5)
        self.assertTrue(transport.disconnected)
        self.assertEqual(response.backend_transport.producerState, "stopped")
        # What the aborted TCP connection then reports.
        transport.protocol.connectionLost(Failure(error.ConnectionLost()))
        self.assertEqual(proxy.access[0].outcome, "backend stalled mid-body")

    def test_slow_client_is_not_a_stall(self) -> None:
        """If the backend is quiet only because the client paused it, then nothing is aborted."""

        response = Stalls()
        proxy = InMemoryProxy(
            agent=ScriptedAgent(lambda: succeed(response)), extra_backends=[BLUE], idle_timeout=5
        )
        _, transport = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        transport.producer.pauseProducing()
        proxy.clock.advance(60)
        self.assertFalse(transport.disconnected)
        self.assertEqual(response.backend_transport.producerState, "paused")


class PassiveHealthTests(SynchronousTestCase):
    def make(self, addresses: list[str], outcomes: dict[str, list[object]]):  # type: ignore[no-untyped-def]
        clock = Clock()

        def make_address(address: str) -> BackendAddress:
            def result() -> Deferred:
                outcome = outcomes[address].pop(0) if outcomes[address] else address
                return fail(outcome) if isinstance(outcome, Exception) else succeed(outcome)

            return BackendAddress(address, ScriptedAgent(result))

        upstream = ResolvingUpstream(backend("blue", "http://svc:80"), FakeResolver(addresses), clock, make_address, 5)
        upstream.start()
        return upstream, clock

    def test_three_connect_failures_eject_with_backoff(self) -> None:
        """If an address fails to connect 3 times in a row, then it is out for 10 s, then 20 s on failing again."""
        refused = error.ConnectionRefusedError
        upstream, clock = self.make(
            ["127.0.2.1", "127.0.2.2"], {"127.0.2.1": [refused()] * 6, "127.0.2.2": []}
        )
        served = []
        for _ in range(6):
            d = upstream.request(b"GET", b"http://svc:80/")
            d.addCallbacks(served.append, lambda f: served.append("failed"))
        # Round-robin: .1 fails at its 1st, 2nd and 3rd turn, then is out.
        self.assertEqual(served, ["127.0.2.2", "failed"] * 3)
        self.assertEqual(
            [self.successResultOf(upstream.request(b"GET", b"http://svc:80/")) for _ in range(3)],
            ["127.0.2.2"] * 3,
        )
        clock.advance(10)
        outcomes = []
        for _ in range(6):
            upstream.request(b"GET", b"http://svc:80/").addCallbacks(
                outcomes.append, lambda f: outcomes.append("failed")
            )
        self.assertEqual(outcomes.count("failed"), 3)
        clock.advance(19)
        self.assertEqual(
            {self.successResultOf(upstream.request(b"GET", b"http://svc:80/")) for _ in range(4)},
            {"127.0.2.2"},
        )
        clock.advance(1)
        self.assertEqual(
            {self.successResultOf(upstream.request(b"GET", b"http://svc:80/")) for _ in range(4)},
            {"127.0.2.1", "127.0.2.2"},
        )

    def test_all_out_means_unavailable(self) -> None:
        """If every address is ejected, then the colour is unavailable until the ejection ends."""
        refused = error.ConnectionRefusedError
        upstream, clock = self.make(["127.0.2.1"], {"127.0.2.1": [refused()] * 3})
        for _ in range(3):
            self.failureResultOf(upstream.request(b"GET", b"http://svc:80/"))
        self.assertFalse(upstream.available)
        clock.advance(10)
        self.assertTrue(upstream.available)


def unavailable() -> AgentUpstream:
    return AgentUpstream(ScriptedAgent(), available=False)


class FailoverTests(SynchronousTestCase):
    def proxy(self, blue_agent, green_agent):  # type: ignore[no-untyped-def]
        # Blue outweighs green a million to one: blue is tried first.
        proxy = InMemoryProxy(
            extra_backends=[backend("blue", "http://b:1", 1_000_000), backend("green", "http://g:1", 1)]
        )
        proxy.router.upstreams = {"blue": AgentUpstream(blue_agent), "green": AgentUpstream(green_agent)}
        return proxy

    def test_refused_connection_retried_on_other_colour(self) -> None:
        """If the connection is refused (nothing sent), then the request goes once to another colour, which Color names."""
        green = ScriptedAgent()
        proxy = self.proxy(ScriptedAgent(lambda: fail(error.ConnectionRefusedError())), green)
        _, transport = proxy.raw(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
        [call] = green.calls
        self.assertEqual(call.headers.getRawHeaders(b"color"), [b"green"])
        call.deferred.errback(error.ConnectionRefusedError())
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 502 "), transport.value())
        self.assertEqual(proxy.access[0].outcome, "backend refused the connection")

    def test_idempotent_request_retried_after_reset(self) -> None:
        """If a GET without body may have reached the backend, then it is still retried once."""
        blue = ScriptedAgent(lambda: fail(ResponseNeverReceived([Failure(error.ConnectionLost())])))
        green = ScriptedAgent(lambda: succeed(HalfResponse()))
        proxy = self.proxy(blue, green)
        written = get(proxy)
        self.assertEqual(len(green.calls), 1)
        self.assertIn(b"HTTP/1.1 200 ", written)

    def test_post_not_retried_after_reset(self) -> None:
        """If a POST may have reached the backend, then it is not sent again: 502."""
        blue = ScriptedAgent(lambda: fail(ResponseNeverReceived([Failure(error.ConnectionLost())])))
        green = ScriptedAgent()
        proxy = self.proxy(blue, green)
        written = get(proxy, b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
        self.assertEqual(green.calls, [])
        self.assertTrue(written.startswith(b"HTTP/1.1 502 "))

    def test_unavailable_colour_weight_goes_to_others(self) -> None:
        """If a colour is out, then every request goes to the colours still in."""
        capture = CaptureResource()
        proxy = InMemoryProxy([(GREEN, capture)], extra_backends=[backend("blue", "http://b:1", 100)])
        proxy.router.upstreams = {"blue": unavailable(), "green": proxy.upstreams["green"]}
        for _ in range(20):
            self.assertIn(b"HTTP/1.1 200 ", get(proxy))
        self.assertEqual(len(capture.seen), 20)
        self.assertEqual(proxy.router.effective_weights(), {"green": 1, "blue": 0})

    def test_nothing_healthy_gives_503(self) -> None:
        """If every colour is out, then 503 with Retry-After, unlike 502 for none configured."""
        proxy = InMemoryProxy(extra_backends=[BLUE])
        proxy.router.upstreams = {"blue": unavailable()}
        written = get(proxy)
        self.assertTrue(written.startswith(b"HTTP/1.1 503 "), written)
        self.assertIn(b"Retry-After: 1\r\n", written)
        self.assertTrue(written.endswith(b"no healthy backends\n"))
