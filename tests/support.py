"""
Test doubles shared by the tests: backends, an in-memory network, fake
agents and resolvers, the in-memory proxy harness, and table tests that
both pytest and trial run row by row.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import treq
from attrs import define, field
from treq.client import HTTPClient
from twisted.internet import error
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import (
    IConnector,
    IConsumer,
    IDelayedCall,
    IHostnameResolver,
    IProtocolFactory,
    IReactorTime,
    ISSLTransport,
    IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.task import Clock, Cooperator
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import Agent, ResponseFailed
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IResponse
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import directlyProvides, implementer

from sillyproxy import Backend, ForwardingResource, ProxySite
from sillyproxy._accesslog import AccessRecord
from sillyproxy._address import BackendAddress
from sillyproxy._canary import Canary
from sillyproxy._config import parse_backend_url
from sillyproxy._headers import Networks
from sillyproxy._metrics import ProxyMetrics
from sillyproxy._mirror import Mirror
from sillyproxy._pool import backend_address_factory
from sillyproxy._routing import Router, Upstream
from sillyproxy._upstream import ResolvingUpstream

# --- Backends ---------------------------------------------------------------


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


class HeldResource(Resource):
    """A backend that keeps every request waiting until the test answers it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.held: list[Request] = []

    def render(self, request: Request) -> int:
        self.held.append(request)
        return NOT_DONE_YET

    def answer(self, body: bytes = b"ok", index: int = 0) -> None:
        """Answer the C{index}th held request (in arrival order) with C{body}."""
        request = self.held[index]
        request.setHeader(b"content-length", b"%d" % len(body))
        request.write(body)
        request.finish()


class RawBackend(Protocol):
    """
    A backend that speaks raw bytes: it records what arrives and, once
    C{answer_after} bytes have, writes C{answer} (then closes, if C{close}).
    """

    def __init__(self, answer: bytes, answer_after: int = 1, close: bool = True) -> None:
        self.answer = answer
        self.answer_after = answer_after
        self.close = close
        self.reads: list[bytes] = []

    @property
    def received(self) -> bytes:
        return b"".join(self.reads)

    def dataReceived(self, data: bytes) -> None:
        before = len(self.received)
        self.reads.append(data)
        if before < self.answer_after <= len(self.received):
            self.transport.write(self.answer)
            if self.close:
                self.transport.loseConnection()


class RawBackendFactory(Factory):
    """Builds L{RawBackend}s that answer alike, and keeps them for the test."""

    def __init__(self, answer: bytes, answer_after: int = 1, close: bool = True) -> None:
        self.answer = answer
        self.answer_after = answer_after
        self.close = close
        self.built: list[RawBackend] = []

    def buildProtocol(self, addr: object) -> RawBackend:
        protocol = RawBackend(self.answer, self.answer_after, self.close)
        protocol.factory = self
        self.built.append(protocol)
        return protocol


# --- Agents, upstreams, responses and resolvers ------------------------------


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


@implementer(IResponse)
class HalfResponse:
    """A response that promises 100 bytes, sends 4, then fails."""

    version = (b"HTTP", 1, 1)
    code = 200
    phrase = b"OK"
    length = 100
    request = None
    previousResponse = None

    def __init__(self) -> None:
        self.headers = Headers()
        self.backend_transport = StringTransport()

    def deliverBody(self, protocol):  # type: ignore[no-untyped-def]
        protocol.makeConnection(self.backend_transport)
        protocol.dataReceived(b"part")
        protocol.connectionLost(Failure(ResponseFailed([Failure(error.ConnectionLost())])))

    def setPreviousResponse(self, response):  # type: ignore[no-untyped-def]
        pass


@implementer(IHostnameResolver)
class FakeResolver:
    """Answers every lookup with the addresses a test sets; None means 'hold the answer'."""

    def __init__(self, addresses: list[str] | None) -> None:
        self.addresses = addresses
        self.lookups: list[str] = []
        self.held: list[object] = []

    def answer(self, receiver: object) -> None:
        for address in self.addresses or []:
            kind = IPv6Address if ":" in address else IPv4Address
            receiver.addressResolved(kind("TCP", address, 8080))  # type: ignore[attr-defined]
        receiver.resolutionComplete()  # type: ignore[attr-defined]

    def resolveHostName(self, receiver, hostName, portNumber=0, addressTypes=None, transportSemantics="TCP"):  # type: ignore[no-untyped-def]
        self.lookups.append(hostName)
        receiver.resolutionBegan(None)
        if self.addresses is None:
            self.held.append(receiver)
        else:
            self.answer(receiver)


# --- In-memory connections ----------------------------------------------------


def _address(host: str, port: int) -> IPv4Address | IPv6Address:
    return IPv6Address("TCP", host, port) if ":" in host else IPv4Address("TCP", host, port)


def flush_pumps(pumps: list[iosim.IOPump]) -> bool:
    """Move every byte waiting on C{pumps}, dropping closed ones; return whether anything moved."""
    moved = False
    for pump in list(pumps):
        moved = pump.flush() or moved
        if pump.clientIO.disconnected and pump.serverIO.disconnected:
            pumps.remove(pump)
    return moved


def closed(pump: iosim.IOPump) -> bool:
    """Whether both ends of an in-memory connection have seen it close."""
    return bool(pump.clientIO.disconnected and pump.serverIO.disconnected)


@implementer(IConnector)
class _Connector:
    """One connection attempt on an L{InMemoryNetwork}."""

    def __init__(
        self, network: InMemoryNetwork, host: str, port: int, factory: ClientFactory, timeout: float
    ) -> None:
        self._network = network
        self.host = host
        self.port = port
        self.factory = factory
        self.timeout = timeout
        self.timer: IDelayedCall | None = None

    def getDestination(self) -> IPv4Address | IPv6Address:
        return _address(self.host, self.port)

    def stopConnecting(self) -> None:
        self.fail(error.UserError())

    def fail(self, reason: Exception) -> None:
        """The attempt failed: tell the factory, as a reactor's connector does."""
        if self in self._network.pending:
            self._network.pending.remove(self)
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.factory.clientConnectionFailed(self, Failure(reason))
        self.factory.doStop()

    def connect(self) -> None:
        raise NotImplementedError("an in-memory attempt is never restarted")

    def disconnect(self) -> None:
        self.stopConnecting()


class InMemoryNetwork:
    """
    The network between the proxy and its backends, in memory: the
    C{connectTCP} that L{backend_address_factory}'s endpoints dial with
    (its C{connect_reactor}).

    Servers listen on C{(address, port)}.  L{flush} completes the pending
    connection attempts, each to its server through iosim's fake transports
    (which never pause), refusing those to an address nobody listens on,
    and moves the bytes.  An attempt to an address in C{unreachable} never
    completes, and fails once its timeout has passed on C{clock}.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.servers: dict[tuple[str, int], IProtocolFactory] = {}
        self.unreachable: set[tuple[str, int]] = set()
        self.pending: list[_Connector] = []
        # Connection attempts to each address, whatever became of them.
        self.attempts: dict[tuple[str, int], int] = {}
        # Every connection made to each address, open or closed.
        self.opened: dict[tuple[str, int], list[iosim.IOPump]] = {}
        self._pumps: list[iosim.IOPump] = []
        self._next_port = 50000

    def listen(self, host: str, port: int, factory: IProtocolFactory) -> None:
        self.servers[(host, port)] = factory

    def connectTCP(self, host, port, factory, timeout=30, bindAddress=None):  # type: ignore[no-untyped-def]
        connector = _Connector(self, host, port, factory, timeout)
        self.attempts[(host, port)] = self.attempts.get((host, port), 0) + 1
        factory.doStart()
        factory.startedConnecting(connector)
        self.pending.append(connector)
        if (host, port) in self.unreachable:
            connector.timer = self.clock.callLater(
                timeout, connector.fail, error.TimeoutError()
            )
        return connector

    def connections(self, host: str, port: int) -> int:
        """How many connections have been made to C{host:port}."""
        return len(self.opened.get((host, port), []))

    def open_connections(self, host: str, port: int) -> int:
        """How many connections to C{host:port} are still open."""
        return sum(not closed(pump) for pump in self.opened.get((host, port), []))

    def flush(self) -> bool:
        """
        Complete or refuse the pending attempts and move every byte, until
        nothing is left to do; return whether anything happened.
        """
        anything = False
        for _ in range(1000):
            moved = False
            for connector in list(self.pending):
                key = (connector.host, connector.port)
                if key in self.unreachable:
                    continue
                moved = True
                server_factory = self.servers.get(key)
                if server_factory is None:
                    connector.fail(error.ConnectionRefusedError())
                    continue
                self.pending.remove(connector)
                self._connect(connector, server_factory)
            if not (flush_pumps(self._pumps) or moved):
                return anything
            anything = True
        raise AssertionError("the network was still busy after 1000 rounds")

    def _connect(self, connector: _Connector, server_factory: IProtocolFactory) -> None:
        self._next_port += 1
        here = IPv4Address("TCP", "10.9.0.1", self._next_port)
        there = connector.getDestination()
        client = connector.factory.buildProtocol(there)
        server = server_factory.buildProtocol(here)
        pump = iosim.connect(
            server,
            iosim.FakeTransport(server, isServer=True, hostAddress=there, peerAddress=here),
            client,
            iosim.FakeTransport(client, isServer=False, hostAddress=here, peerAddress=there),
            greet=False,
        )
        self.opened.setdefault((connector.host, connector.port), []).append(pump)
        self._pumps.append(pump)


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

    def flush(self) -> bool:
        """Move every byte waiting on any connection; return whether any moved."""
        return flush_pumps(self._pumps)


class _OneEndpoint:
    def __init__(self, endpoint: InMemoryEndpoint) -> None:
        self._endpoint = endpoint

    def endpointForURI(self, uri: object) -> InMemoryEndpoint:
        return self._endpoint


# --- The proxy harness ---------------------------------------------------------


def backend(color: str, url: str, weight: int = 1) -> Backend:
    return Backend(color, url, weight, parse_backend_url(url))


class _Tick:
    """A cooperator tick waiting for L{InMemoryProxy.run_tick}; cancellable like a DelayedCall."""

    def __init__(self, queue: list[_Tick], work: Callable[[], None]) -> None:
        self._queue = queue
        self.work = work

    def cancel(self) -> None:
        if self in self._queue:
            self._queue.remove(self)


def due_now(clock: Clock) -> bool:
    """Whether C{clock} has a call to run without moving time."""
    now = clock.seconds()
    return any(call.getTime() <= now for call in clock.getDelayedCalls())


class InMemoryProxy:
    """
    The proxy as C{tap.py} wires it, in memory, with a seeded random source
    and a clock that moves only when the test moves it.

    Each backend in C{backends} is a twisted.web resource (served by a
    C{Site}) or a server protocol factory, listening on the in-memory
    C{network} at C{10.0.0.N} and the port of its URL.  Its requests take
    the real hop: a L{ResolvingUpstream} (whose resolver answers that
    address), then the L{AddressAgent} and L{RetirablePool} that
    L{backend_address_factory} builds, then Twisted's HTTP/1.1 client
    protocol.  Clients reach the proxy's L{ProxySite} through C{client}
    (treq) or L{raw} (bytes).

    The colours in C{extra_backends} are served by C{agent}, a fake agent
    the test scripts.
    """

    def __init__(
        self,
        backends: Sequence[tuple[Backend, IResource | IProtocolFactory]] = (),
        agent: IAgent | None = None,
        seed: int = 0,
        extra_backends: Sequence[Backend] = (),
        response_timeout: float = 60.0,
        idle_timeout: float = 60.0,
        send_timeout: float = 60.0,
        tunnel_idle_timeout: float = 3600.0,
        metrics_for: Callable[[Router], ProxyMetrics] | None = None,
        generate_request_id: Callable[[], bytes] = lambda: b"0123456789abcdef0123456789abcdef",
        keepalive: int = 100,
        connect_timeout: float = 5.0,
        randbelow: Callable[[int], int] | None = None,
        trusted_proxies: Networks = (),
        sticky_secret: bytes = b"",
        forward_options: dict[str, Any] | None = None,
        canary_options: dict[str, Any] | None = None,
        mirrors: Sequence[tuple[str, float]] = (),
        mirror_max_inflight: int = 100,
    ) -> None:
        self.clock = Clock()
        # Upload bodies go one chunk per tick, and flush runs one tick per
        # round, so each chunk crosses to the backend before the next is read.
        self._ticks: list[_Tick] = []
        self.cooperator = Cooperator(
            terminationPredicateFactory=lambda: lambda: True,
            scheduler=self._schedule_tick,
        )
        self.network = InMemoryNetwork(self.clock)
        self.backend_addresses: dict[str, tuple[str, int]] = {}
        self.resolvers: dict[str, FakeResolver] = {}
        self.upstreams: dict[str, Upstream] = {}
        for number, (served, server) in enumerate(backends, start=1):
            address = f"10.0.0.{number}"
            port = served.location.port
            if IResource.providedBy(server):
                # The backend's own clock: its timeouts are none of the test's business.
                server = Site(server, reactor=MemoryReactorClock())
            self.network.listen(address, port, server)
            self.backend_addresses[served.color] = (address, port)
            self.resolvers[served.color] = FakeResolver([address])
            self.upstreams[served.color] = ResolvingUpstream(
                served,
                self.resolvers[served.color],
                self.clock,
                backend_address_factory(
                    self.clock,
                    served.location,
                    keepalive,
                    connect_timeout,
                    connect_reactor=self.network,
                ),
                refresh=5,
            )
        scripted = agent if agent is not None else failing_agent(AssertionError("no backend for this colour"))
        for extra in extra_backends:
            self.upstreams[extra.color] = AgentUpstream(scripted)
        for upstream in self.upstreams.values():
            upstream.start()
        served_backends = [b for b, _ in backends] + list(extra_backends)
        self.router = Router(
            served_backends,
            self.upstreams,
            randbelow if randbelow is not None else random.Random(seed).randrange,
            sticky_secret=sticky_secret,
        )
        self.access: list[AccessRecord] = []
        # Finished requests feed the metrics, as the tap wires them.
        self.metrics = metrics_for(self.router) if metrics_for is not None else None
        # With canary_options (the Canary's window and min_requests), the
        # ramp, the rollbacks and the traffic they are judged on.
        self.canary = (
            Canary(served_backends, self.router, self.clock, **canary_options)
            if canary_options is not None
            else None
        )
        by_color = {b.color: b for b in served_backends}
        # Copies are drawn with their own seeded source, apart from routing's.
        mirror_draw = random.Random(seed + 1).randrange
        self.mirrors = [
            Mirror(
                attrs.evolve(by_color[color], mirror_percent=percent),
                percent,
                self.upstreams[color],
                self.clock,
                self.cooperator,
                mirror_draw,
                mirror_max_inflight,
                response_timeout,
            )
            for color, percent in mirrors
        ]
        options = dict(forward_options or {})
        if self.canary is not None:
            options["on_failed_over"] = self.canary.failed_over
        if self.mirrors:
            options["mirrors"] = self.mirrors
        self.resource = ForwardingResource(
            self.router,
            self.clock,
            self._finished,
            self.cooperator,
            response_timeout=response_timeout,
            idle_timeout=idle_timeout,
            send_timeout=send_timeout,
            tunnel_idle_timeout=tunnel_idle_timeout,
            metrics=self.metrics,
            generate_request_id=generate_request_id,
            trusted_proxies=trusted_proxies,
            **options,
        )
        self.site = ProxySite(self.resource, reactor=self.clock, on_refused=self._finished)
        self.client = InMemoryClient(self.site)

    def _schedule_tick(self, work: Callable[[], None]) -> _Tick:
        tick = _Tick(self._ticks, work)
        self._ticks.append(tick)
        return tick

    def run_tick(self) -> bool:
        """Run the cooperator's next tick (one chunk of an upload); return whether there was one."""
        if not self._ticks:
            return False
        self._ticks.pop(0).work()
        return True

    def _finished(self, record: AccessRecord) -> None:
        if self.metrics is not None:
            self.metrics.observe(record)
        if self.canary is not None:
            self.canary.observe(record)
        self.access.append(record)

    def connections(self, color: str) -> int:
        """How many connections the proxy has opened to the colour's backend."""
        return self.network.connections(*self.backend_addresses[color])

    def open_connections(self, color: str) -> int:
        """How many connections to the colour's backend are open now."""
        return self.network.open_connections(*self.backend_addresses[color])

    def idle_connections(self, color: str) -> int:
        """How many connections to the colour's backend wait in its pool."""
        return sum(a.idle_connections() for a in self.upstreams[color].addresses)

    def flush(self) -> None:
        """
        Move every byte on every connection and run what is due on the
        clock, until nothing is left to do without moving time.
        """
        for _ in range(1000):
            moved = self.client.flush()
            moved = self.network.flush() or moved
            if self.run_tick():
                continue
            if due_now(self.clock):
                self.clock.advance(0)
            elif not moved:
                return
        raise AssertionError("still busy after 1000 rounds")

    def raw(
        self,
        data: bytes,
        max_body: int = 0,
        idle_timeout: float | None = None,
        body_timeout: float = 0,
        header_timeout: float = 0,
    ) -> tuple[bytes, StringTransport]:
        """
        Feed raw bytes to the proxy's Site and return what it wrote back,
        with the transport, to check framing and connection handling.
        Requests the Site refuses itself go to C{access} too.

        @param idle_timeout: if given, the Site's keep-alive idle timeout.
        @param body_timeout: the Site's request body timeout.
        @param header_timeout: the Site's request header timeout.
        With any of them, the Site is started so that its sweep runs on the clock.
        """
        options: dict[str, Any] = {"timeout": idle_timeout} if idle_timeout is not None else {}
        site = ProxySite(
            self.resource,
            reactor=self.clock,
            max_body=max_body,
            body_timeout=body_timeout,
            header_timeout=header_timeout,
            on_refused=self._finished,
            **options,
        )
        if idle_timeout is not None or body_timeout or header_timeout:
            site.doStart()
        protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.9", 40000))
        transport = TCPStringTransport(
            peerAddress=IPv4Address("TCP", "127.0.0.9", 40000),
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
        )
        protocol.makeConnection(transport)
        transport.protocol = protocol
        if data:
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


class BodyCollector:
    """A response body's protocol: collects the body, and how it ended (the reason's class name)."""

    def __init__(self) -> None:
        self.data = b""
        self.ended: str | None = None

    def makeConnection(self, transport: object) -> None:
        pass

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure) -> None:
        self.ended = type(reason.value).__name__


# --- Table tests -----------------------------------------------------------------


class _Rows:
    """A test method and the rows it runs on; L{TableTests} expands it."""

    def __init__(self, test: Callable[..., None], table: Sequence[tuple[Any, ...]]) -> None:
        self.test = test
        self.table = table


def rows(*table: tuple[Any, ...]) -> Callable[[Callable[..., None]], _Rows]:
    """
    Run the decorated method of a L{TableTests} once per row, with the row
    as its arguments, as one test method per row (so pytest and trial both
    run, report and select each row by name).
    """

    def mark(test: Callable[..., None]) -> _Rows:
        return _Rows(test, table)

    return mark


def _slug(value: object) -> str:
    if isinstance(value, BaseException):
        text = type(value).__name__
    elif isinstance(value, bytes):
        text = value.decode("latin-1")
    else:
        text = str(value)
    return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_")


def _row_name(name: str, index: int, row: tuple[Any, ...]) -> str:
    values = "_".join(slug for slug in map(_slug, row) if slug)[:48].rstrip("_")
    return f"{name}_{index:02d}_{values}" if values else f"{name}_{index:02d}"


def _row_method(test: Callable[..., None], row: tuple[Any, ...]) -> Callable[[SynchronousTestCase], None]:
    def method(self: SynchronousTestCase) -> None:
        test(self, *row)

    method.__doc__ = test.__doc__
    return method


class TableTests(SynchronousTestCase):
    """
    A test case whose L{rows} methods become one method per row, named
    C{<method>_<index>_<values>}, e.g. C{test_weight_refused_03_1_5_not_an_integer}.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if not isinstance(value, _Rows):
                continue
            delattr(cls, name)
            if not value.table:
                raise ValueError(f"{cls.__name__}.{name} has no rows")
            for index, row in enumerate(value.table):
                method = _row_method(value.test, row)
                method.__name__ = method.__qualname__ = _row_name(name, index, row)
                setattr(cls, method.__name__, method)
