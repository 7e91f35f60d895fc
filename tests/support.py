"""Test doubles shared by the in-memory tests: capture backends, fake agents, a proxy harness."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import treq
from attrs import define, field
from treq.client import HTTPClient
from treq.testing import RequestTraversalAgent
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import (
    IConsumer,
    IProtocolFactory,
    ISSLTransport,
    IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock, Cooperator
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.test import iosim
from twisted.web.client import Agent
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request
from zope.interface import directlyProvides, implementer

from sillyproxy import Backend, ForwardingResource, ProxySite
from sillyproxy._accesslog import AccessRecord
from sillyproxy._address import BackendAddress
from sillyproxy._config import parse_backend_url
from sillyproxy._metrics import ProxyMetrics
from sillyproxy._routing import Router


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


class AgentUpstream:
    """
    An upstream (L{sillyproxy._routing.Upstream}) that sends every request
    through one agent, to one address, and is always available unless a
    test says otherwise.
    """

    def __init__(self, agent: IAgent, address: str = "10.0.0.1:80", available: bool = True) -> None:
        self.agent = agent
        self.available = available
        self.addresses: Sequence[BackendAddress] = ()
        self._address = address

    def request(self, method, uri, headers=None, bodyProducer=None, sent_to=None):  # type: ignore[no-untyped-def]
        if sent_to is not None:
            sent_to(self._address)
        return self.agent.request(method, uri, headers, bodyProducer)

    def start(self) -> None:
        pass

    def stop(self) -> Deferred[object]:
        return succeed(None)


@implementer(IStreamClientEndpoint)
class InMemoryEndpoint:
    """
    A client endpoint whose every connection reaches C{server_factory} in
    memory, through iosim's fake transports (which never pause); the pumps
    go into C{pumps} for the test to flush.
    """

    def __init__(
        self,
        server_factory: IProtocolFactory,
        pumps: list[iosim.IOPump],
        client_address: IPv4Address = IPv4Address("TCP", "127.0.0.9", 40000),
        server_address: IPv4Address = IPv4Address("TCP", "127.0.0.1", 8080),
        tls: bool = False,
    ) -> None:
        self._server_factory = server_factory
        self._pumps = pumps
        self._client_address = client_address
        self._server_address = server_address
        self._tls = tls
        self.connections = 0

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[Protocol]:
        self.connections += 1
        server = self._server_factory.buildProtocol(self._client_address)
        client = protocolFactory.buildProtocol(self._server_address)
        server_transport = iosim.FakeTransport(
            server, isServer=True, hostAddress=self._server_address, peerAddress=self._client_address
        )
        client_transport = iosim.FakeTransport(
            client, isServer=False, hostAddress=self._client_address, peerAddress=self._server_address
        )
        if self._tls:
            directlyProvides(server_transport, ISSLTransport)
            directlyProvides(client_transport, ISSLTransport)
        self._pumps.append(iosim.connect(server, server_transport, client, client_transport))
        return succeed(client)


@implementer(IBodyProducer)
class _BytesProducer:
    """Writes a whole bytes body at once, so in-memory requests need no cooperator."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self._body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class InMemoryClient:
    """
    A treq client whose requests reach C{site} (a L{ProxySite}) in memory:
    what the proxy's clients see, through the proxy's own channel and
    Request.  C{request}, C{get} and C{content} are treq's.
    """

    def __init__(self, site: IProtocolFactory, tls: bool = False) -> None:
        self._pumps: list[iosim.IOPump] = []
        endpoint = InMemoryEndpoint(site, self._pumps, tls=tls)
        agent = Agent.usingEndpointFactory(MemoryReactorClock(), _OneEndpoint(endpoint))
        self._client = HTTPClient(agent, data_to_body_producer=_BytesProducer)
        self.request = self._client.request
        self.get = self._client.get
        self.content = treq.content

    def flush(self) -> None:
        """Move every byte waiting on any connection."""
        for pump in list(self._pumps):
            pump.flush()
            if pump.clientIO.disconnected and pump.serverIO.disconnected:
                self._pumps.remove(pump)


class _OneEndpoint:
    def __init__(self, endpoint: InMemoryEndpoint) -> None:
        self._endpoint = endpoint

    def endpointForURI(self, uri: object) -> InMemoryEndpoint:
        return self._endpoint


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
        metrics_for: Callable[[Router], ProxyMetrics] | None = None,
        generate_request_id: Callable[[], bytes] = lambda: b"0123456789abcdef0123456789abcdef",
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
        self.upstreams = {b.color: AgentUpstream(self.agent) for b in served}
        self.router = Router(served, self.upstreams, random.Random(seed).randrange)
        self.access: list[AccessRecord] = []
        # Finished requests feed the metrics, as the tap wires them.
        self.metrics = metrics_for(self.router) if metrics_for is not None else None
        self.resource = ForwardingResource(
            self.router,
            self.clock,
            self._finished,
            self.cooperator,
            response_timeout=response_timeout,
            idle_timeout=idle_timeout,
            metrics=self.metrics,
            generate_request_id=generate_request_id,
        )
        self.site = ProxySite(self.resource, reactor=self.clock)
        self.client = InMemoryClient(self.site)

    def _finished(self, record: AccessRecord) -> None:
        if self.metrics is not None:
            self.metrics.observe(record)
        self.access.append(record)

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
