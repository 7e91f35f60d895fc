"""Test doubles shared by the in-memory tests: capture backends, fake agents, a proxy harness."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from attrs import define, field
from treq.testing import RequestTraversalAgent, StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IConsumer, ITCPTransport
from twisted.internet.task import Clock, Cooperator
from twisted.internet.testing import StringTransport
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request
from zope.interface import implementer

from sillyproxy import Backend, ForwardingResource, ProxySite
from sillyproxy._routing import Router
from sillyproxy._accesslog import AccessRecord
from sillyproxy._config import parse_backend_url


@define
class Captured:
    """What a capture backend saw of one request."""

    method: bytes
    uri: bytes
    headers: Headers
    body: bytes


class CaptureResource(Resource):
    """A backend that records each request and answers with a fixed response."""

    isLeaf = True

    def __init__(
        self,
        status: int = 200,
        headers: Sequence[tuple[bytes, Sequence[bytes]]] = (),
        body: bytes = b"ok",
    ) -> None:
        super().__init__()
        self.seen: list[Captured] = []
        self.status = status
        self.headers = list(headers)
        self.body = body

    def render(self, request: Request) -> bytes:
        self.seen.append(
            Captured(
                request.method,
                request.uri,
                request.requestHeaders.copy(),
                request.content.read(),
            )
        )
        request.setResponseCode(self.status)
        for name, values in self.headers:
            request.responseHeaders.setRawHeaders(name, values)
        return self.body


@implementer(IAgent)
class OriginAgent:
    """Send each request to the in-memory agent registered for its origin."""

    def __init__(self, agents: dict[bytes, IAgent]) -> None:
        self.agents = agents

    def request(self, method, uri, headers=None, bodyProducer=None):  # type: ignore[no-untyped-def]
        for origin, agent in self.agents.items():
            if uri.startswith(origin + b"/"):
                return agent.request(method, uri, headers, bodyProducer)
        raise AssertionError(f"no backend for {uri!r}")


@implementer(IAgent)
class ScriptedAgent:
    """
    An agent whose requests are answered by a test: each call is recorded
    with a Deferred the test fires (or that records its cancellation).
    """

    @define
    class Call:
        method: bytes
        uri: bytes
        headers: Headers
        body: IBodyProducer | None
        deferred: Deferred
        cancelled: list[bool] = field(factory=list)

    def __init__(self, result: Callable[[], Deferred] | None = None) -> None:
        self.calls: list[ScriptedAgent.Call] = []
        self._result = result

    def request(self, method, uri, headers=None, bodyProducer=None):  # type: ignore[no-untyped-def]
        if self._result is not None:
            deferred = self._result()
            self.calls.append(self.Call(method, uri, headers, bodyProducer, deferred))
            return deferred
        cancelled: list[bool] = []
        deferred: Deferred = Deferred(lambda d: cancelled.append(True))
        self.calls.append(self.Call(method, uri, headers, bodyProducer, deferred, cancelled))
        return deferred


def failing_agent(exception: BaseException) -> ScriptedAgent:
    """An agent whose every request fails with C{exception}."""
    return ScriptedAgent(lambda: fail(exception))


def backend(color: str, url: str, weight: int = 1) -> Backend:
    return Backend(color, url, weight, parse_backend_url(url))


class InMemoryProxy:
    """
    The forwarding resource wired to in-memory backends and a seeded random
    source, driven by StubTreq (for requests) or raw bytes (for framing).
    """

    def __init__(
        self,
        backends: Sequence[tuple[Backend, IResource]] = (),
        agent: IAgent | None = None,
        seed: int = 0,
        extra_backends: Sequence[Backend] = (),
        response_timeout: float = 60.0,
        idle_timeout: float = 60.0,
        metrics: object | None = None,
    ) -> None:
        self.clock = Clock()
        self.cooperator = Cooperator(
            scheduler=lambda work: self.clock.callLater(0, work)
        )
        self.backend_agents = {
            b.origin: RequestTraversalAgent(resource) for b, resource in backends
        }
        self.agent = agent if agent is not None else OriginAgent(self.backend_agents)
        served = [b for b, _ in backends] + list(extra_backends)
        self.router = Router(
            served, {b.color: self.agent for b in served}, random.Random(seed).randrange
        )
        self.access: list[AccessRecord] = []
        self.resource = ForwardingResource(
            self.router,
            self.clock,
            self.access.append,
            self.cooperator,
            response_timeout=response_timeout,
            idle_timeout=idle_timeout,
            metrics=metrics,
        )
        self.client = StubTreq(self.resource)

    def flush(self) -> None:
        """Pump every in-memory connection until nothing is left to do."""
        # Each pump can hand work to another (backend reply -> proxy -> client),
        # so go round a few times after the clock has nothing left.
        quiet_rounds = 0
        for _ in range(1000):
            self.client.flush()
            for agent in self.backend_agents.values():
                agent.flush()
            if self.clock.getDelayedCalls():
                self.clock.advance(0)
                quiet_rounds = 0
            else:
                quiet_rounds += 1
                if quiet_rounds == 3:
                    return

    def raw(
        self, data: bytes, max_body: int = 0, idle_timeout: float | None = None
    ) -> tuple[bytes, StringTransport]:
        """
        Feed raw bytes to the proxy's Site and return what it wrote back,
        with the transport, to check framing and connection handling.

        @param idle_timeout: if given, the Site's keep-alive idle timeout,
            and the Site is started so that its sweep runs on the clock.
        """
        if idle_timeout is None:
            site = ProxySite(self.resource, reactor=self.clock, max_body=max_body)
        else:
            site = ProxySite(
                self.resource, reactor=self.clock, max_body=max_body, timeout=idle_timeout
            )
            site.doStart()
        protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.9", 40000))
        transport = TCPStringTransport(
            peerAddress=IPv4Address("TCP", "127.0.0.9", 40000),
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
        )
        protocol.makeConnection(transport)
        transport.protocol = protocol
        protocol.dataReceived(data)
        self.flush()
        return transport.value(), transport


@implementer(ITCPTransport)
class TCPStringTransport(StringTransport):
    """A StringTransport that, like TCP, can close only its writing side."""

    write_closed = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass

    def setTcpKeepAlive(self, enabled: bool) -> None:
        pass


@implementer(IConsumer)
class ListConsumer:
    """Collects what a body producer writes."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def registerProducer(self, producer, streaming):  # type: ignore[no-untyped-def]
        pass

    def unregisterProducer(self):  # type: ignore[no-untyped-def]
        pass

    def write(self, data: bytes) -> None:
        self.chunks.append(data)
