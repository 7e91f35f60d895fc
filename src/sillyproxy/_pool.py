"""
Connection pools for one backend address: quiet, retirable, and built with
the right endpoint.

The pool and the agent rely on private names of twisted.web.client and
twisted.web._newclient (checked against Twisted 25.5.0 to 26.10.0, pinned
by C{tests/test_compat.py}):
  - C{HTTPConnectionPool._connections} (key -> list of idle connections),
    C{_timeouts} (connection -> object with C{cancel()}),
    C{_putConnection(key, connection)} and C{_removeConnection(key,
    connection)}, which L{RetirablePool} overrides and calls;
  - C{HTTPConnectionPool.getConnection}'s way with an idle connection,
    which L{RetirablePool.idle_connection} repeats without a Deferred: pop
    the oldest, drop its C{_timeouts} entry, and hand it out if QUIESCENT,
    wrapped in C{client._RetryingHTTP11ClientProtocol(connection,
    newConnection)} when C{retryAutomatically}, where C{newConnection()}
    calls C{_newConnection(key, endpoint)};
  - C{HTTP11ClientProtocol._giveUp(failure)}, what its C{dataReceived}
    does when the parser raises, done the same when the response head is
    read in one pass (L{sillyproxy._response_head});
  - C{client._HTTP11ClientFactory}, the factory the pool connects with,
    built as C{(quiescentCallback, metadata)}; L{_QuietClientFactory}
    builds its protocols with that callback;
  - C{_newclient.Request._construct}, which builds the request a pooled
    C{HTTP11ClientProtocol} sends (C{HTTP11ClientProtocol} itself is
    public, and L{_ClientProtocol} extends its C{request} method);
  - what C{HTTP11ClientProtocol.request} leaves once a request without a
    body is written, which L{_ClientProtocol} sets itself for such a
    request: C{_state} C{"WAITING"}, C{_finishedRequest} (cancelled by
    aborting the connection and calling C{_disconnectParser} with
    C{CancelledError}), C{_currentRequest}, C{_transportProxy} (a
    C{TransportProxyProducer} of the transport), C{_parser}, an
    C{HTTPClientParser(request, finisher)} connected to it, and
    C{_responseDeferred}, the parser's Deferred of that name, which it
    makes when it is made and fires with the response or the reason there
    is none (Twisted chains it to C{_finishedRequest}; here the two are
    one); and the head C{Request.writeTo} writes for such a request;
  - C{HTTP11ClientProtocol._parser}, the C{HTTPClientParser} that
    C{request} sets up before it returns, and its C{connHeaders} (from
    C{HTTPParser}, reset by a 1xx response): the response's
    connection-control headers, Connection among them, which Twisted keeps
    out of C{response.headers}.  L{_ClientProtocol} reads the Connection
    tokens there to drop the headers they name, which would otherwise reach
    the client, and the pool reads them (the parser is still set when the
    protocol reports itself quiescent) to close rather than pool a
    connection whose response said C{close} among other tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Union

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import (
    IAddress,
    IHalfCloseableProtocol,
    IReactorTime,
    ITCPTransport,
    IStreamClientEndpoint,
)
from twisted.python.failure import Failure
from twisted.internet.abstract import isIPv6Address
from twisted.web import client
from twisted.web._newclient import HTTP11ClientProtocol, HTTPClientParser, TransportProxyProducer
from twisted.web._newclient import Request as ClientRequest
# Imported by name: twisted.web.client is wrapped for its deprecated
# names, and each attribute read through the module costs several calls.
from twisted.web.client import BrowserLikePolicyForHTTPS, _RetryingHTTP11ClientProtocol
from twisted.web.http_headers import Headers
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.web.iweb import IAgent, IBodyProducer, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from ._address import BackendAddress
from ._config import BackendURL
from ._compat import header_key, header_values
from ._headers import connection_tokens
from ._response_head import read_whole_head
from ._sweep import Sweep
from ._tunnel import Switched, Tunnel

__all__ = ["AddressAgent", "RetirablePool", "backend_address_factory"]

# What the pool hands out: a connection, or one wrapped to retry a request.
IdleConnection = Union[HTTP11ClientProtocol, _RetryingHTTP11ClientProtocol]

# Close idle backend connections well before typical server idle timeouts
# (60 s and more), so the pool rarely hands out one the server is closing.
IDLE_BACKEND_TIMEOUT = 30

_CONNECTION = header_key(b"connection")
_HOST = header_key(b"host")
# Connection tokens that are options, not the names of headers to drop.
_CONNECTION_OPTIONS = frozenset({b"keep-alive", b"close"})


class _ClientProtocol(HTTP11ClientProtocol):
    """
    Twisted's HTTP/1.1 client protocol, but the headers that a response's
    Connection header names do not reach the response's headers.

    Twisted keeps Connection (with the other connection-control headers) in
    its parser's C{connHeaders}, not in the response's headers, so the
    proxy's hop-by-hop filter never sees its tokens.  This is done here, on
    every request the protocol sends, rather than in L{AddressAgent}: the
    pool hands a reused connection out wrapped (in
    C{_RetryingHTTP11ClientProtocol}) and may send the request again over
    another connection, whose parser is the one that reads the response.
    """

    # TCP, or TLS over TCP; set by makeConnection before any request.
    transport: ITCPTransport

    def request(self, request: ClientRequest) -> Deferred[IResponse]:
        if request.bodyProducer is None and self._state == "QUIESCENT":
            head = bodyless_request_head(request)
            if head is not None:
                return self._send_bodyless(request, head)
        answer = super().request(request)
        # Set by request() unless it refused at once (and then the answer
        # fails), and dropped by the protocol as soon as the response is
        # complete, which can be before the response is handed over: keep it.
        parser = getattr(self, "_parser", None)
        if parser is None:
            return answer
        return answer.addCallback(_drop_connection_named, parser)

    def _send_bodyless(self, request: ClientRequest, head: bytes) -> Deferred[IResponse]:
        """
        What C{HTTP11ClientProtocol.request} does for a request without a
        body, whose writing cannot fail once its head is made: no Deferred
        for the writing, already done, and the head written at once.
        """
        self.transport.write(head)
        self._state = "WAITING"
        self._currentRequest = request
        proxy = self._transportProxy = TransportProxyProducer(self.transport)
        parser = self._parser = HTTPClientParser(request, self._finishResponse)
        # One Deferred where Twisted chains two: the parser's, fired with
        # the response or the reason there is none, is also the request's,
        # and cancelling it cancels the request.
        finished: Deferred[IResponse] = Deferred(self._cancel_waiting)
        parser._responseDeferred = self._responseDeferred = self._finishedRequest = finished
        parser.makeConnection(proxy)
        return finished.addCallback(_drop_connection_named, parser)

    def _cancel_waiting(self, _: object) -> None:
        # As HTTP11ClientProtocol's canceller once the request is written.
        self.transport.abortConnection()
        self._disconnectParser(Failure(CancelledError()))

    def dataReceived(self, data: bytes) -> None:
        # A response head that came whole is read in one pass.
        parser = self._parser
        if parser is not None:
            try:
                if read_whole_head(parser, data):
                    return
            except BaseException:
                self._giveUp(Failure())
                return
        super().dataReceived(data)


_CONTENT_LENGTH_ZERO = b"Content-Length: 0\r\n"


def bodyless_request_head(request: ClientRequest) -> bytes | None:
    """
    The bytes C{Request.writeTo} writes for C{request}, which has no body,
    made in one pass; None when C{request} is not exactly one Host header
    away from being sent, for Twisted to refuse as it does.

    Twisted writes the request line, C{Connection: close} unless the
    request is persistent, C{Content-Length: 0} for a PUT or POST (a body
    is expected of them), then every header in the order L{Headers} keeps
    them, each value on its own line.  The method and target were checked
    when the request was made.
    """
    headers = request.headers
    hosts = header_values(headers, _HOST)
    if hosts is None or len(hosts) != 1:
        return None
    lines = [request.method, b" ", request.uri, b" HTTP/1.1\r\n"]
    if not request.persistent:
        lines.append(b"Connection: close\r\n")
    if request.method in (b"PUT", b"POST"):
        lines.append(_CONTENT_LENGTH_ZERO)
    for name, values in headers.getAllRawHeaders():
        for value in values:
            lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def _drop_connection_named(response: IResponse, parser: HTTPClientParser) -> IResponse:
    """
    Remove from C{response}'s headers those its Connection header names.

    Read when the response arrives: a 1xx response before it resets
    C{connHeaders}.  Nothing to do on the common path, where Connection is
    absent or says only keep-alive or close.
    """
    values = header_values(parser.connHeaders, _CONNECTION)
    if values:
        named = connection_tokens(values) - _CONNECTION_OPTIONS
        if named:
            headers = response.headers
            for name in named:
                headers.removeHeader(name)
    return response


def _asked_to_close(connection: HTTP11ClientProtocol) -> bool:
    """
    Whether the response just read said C{close} among its Connection tokens.

    Twisted closes only when one Connection value is exactly C{close}, so
    C{Connection: close, X-Foo} or C{Connection: Close} would return to the
    pool a connection the backend is about to close.  The pool is told the
    connection is free before the protocol drops its parser.
    """
    parser = getattr(connection, "_parser", None)
    if parser is None:
        return False
    values = header_values(parser.connHeaders, _CONNECTION)
    return values is not None and b"close" in connection_tokens(values)


class _QuietClientFactory(client._HTTP11ClientFactory):
    """Builds L{_ClientProtocol}s for the pool, without logging each connection."""

    # Twisted logs "Starting factory" for each new backend connection, which
    # under load is a log line per request and says nothing an operator needs.
    noisy = False

    def __init__(
        self, quiescentCallback: Callable[[HTTP11ClientProtocol], None], metadata: object
    ) -> None:
        super().__init__(quiescentCallback, metadata)
        self._when_quiescent = quiescentCallback

    def buildProtocol(self, addr: IAddress | None) -> HTTP11ClientProtocol:
        return _ClientProtocol(self._when_quiescent)


class _IdleSince:
    """When a pooled connection went idle; stands where the pool expects its timer."""

    __slots__ = ("since",)

    def __init__(self, since: float) -> None:
        self.since = since

    def cancel(self) -> None:
        # Taking the connection out of the pool is all it takes.
        pass


class RetirablePool(client.HTTPConnectionPool):
    """
    An HTTPConnectionPool whose connections start silently and which can be
    retired: once an address leaves DNS, its idle connections close at once
    and connections that finish their request close instead of idling.

    Idle connections are closed after C{cachedConnectionTimeout} seconds
    (up to a quarter more) by one sweep, not by a timer set and cancelled
    around every request.
    """

    _factory = _QuietClientFactory
    retired = False
    _sweep: Sweep | None = None

    def retire(self) -> Deferred[None]:
        self.retired = True
        return self.closeCachedConnections()

    def idle_connections(self) -> int:
        return sum(len(idle) for idle in self._connections.values())

    def _putConnection(self, key, connection):  # type: ignore[no-untyped-def]
        if self.retired or _asked_to_close(connection):
            connection.transport.loseConnection()
            return
        if connection.state != "QUIESCENT":
            # Twisted's own method logs this as a bug; let it.
            super()._putConnection(key, connection)
            return
        idle = self._connections.setdefault(key, [])
        if len(idle) >= self.maxPersistentPerHost:
            oldest = idle.pop(0)
            del self._timeouts[oldest]
            oldest.transport.loseConnection()
        idle.append(connection)
        self._timeouts[connection] = _IdleSince(self._reactor.seconds())
        if self._sweep is None:
            self._sweep = Sweep(
                self._reactor, self.cachedConnectionTimeout / 4, self._close_expired
            )
        self._sweep.wake()

    def idle_connection(self, key: object, endpoint: IStreamClientEndpoint) -> IdleConnection | None:
        """
        Take an idle connection for C{key} out of the pool, as
        C{getConnection} would hand it out (wrapped to retry once over a new
        connection), or None if there is none.  Per request this spares
        the already-fired Deferred that C{getConnection} returns.
        """
        connections = self._connections.get(key)
        while connections:
            connection = connections.pop(0)
            del self._timeouts[connection]
            if connection.state == "QUIESCENT":
                if self.retryAutomatically:
                    return _RetryingHTTP11ClientProtocol(
                        connection, lambda: self._newConnection(key, endpoint)
                    )
                return connection
        return None

    def _close_expired(self, now: float) -> bool:
        expired = now - self.cachedConnectionTimeout
        for key, idle in list(self._connections.items()):
            for connection in list(idle):
                if self._timeouts[connection].since <= expired:
                    self._removeConnection(key, connection)
        return bool(self._timeouts)

    def closeCachedConnections(self) -> Deferred[None]:
        if self._sweep is not None:
            self._sweep.stop()
        return super().closeCachedConnections()


@implementer(IAgent)
class AddressAgent:
    """
    Send requests for one backend to one of its addresses, over a pool.

    This is what Agent does once it has parsed the URL and picked the
    endpoint; the proxy already knows both, so per request it skips the URL
    parsing, endpoint lookup and host computation that Agent repeats.

    @param origin: the backend's C{scheme://host:port}; request URLs start
        with it.
    """

    def __init__(
        self, pool: RetirablePool, endpoint: IStreamClientEndpoint, origin: bytes
    ) -> None:
        self._pool = pool
        self._endpoint = endpoint
        self._origin = origin
        # The pool keys connections by this; one pool serves one address.
        self._key = origin
        # Host for a request without one (HTTP/1.0): the backend's name.
        self._host = origin.split(b"://", 1)[1]

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> Deferred[IResponse]:
        if not uri.startswith(self._origin):
            raise ValueError(f"{uri!r} is not a URL of {self._origin!r}")
        target = uri[len(self._origin) :] or b"/"
        if headers is None:
            headers = Headers()
        if not headers.hasHeader(b"host"):
            headers.addRawHeader(b"host", self._host)
        try:
            # Checks the method and target bytes, before a connection is
            # taken out of the pool for a request that cannot be sent.
            request = ClientRequest._construct(
                method, target, headers, bodyProducer, self._pool.persistent
            )
        except Exception:
            return fail()

        idle = self._pool.idle_connection(self._key, self._endpoint)
        if idle is not None:
            return idle.request(request)

        def send(connection: HTTP11ClientProtocol) -> Deferred[IResponse]:
            return connection.request(request)

        return self._pool.getConnection(self._key, self._endpoint).addCallback(send)

    def upgrade(
        self, method: bytes, uri: bytes, headers: Headers
    ) -> Deferred[IResponse | tuple[Switched, UpgradeClientProtocol]]:
        """
        Send a request that asks to switch protocols, on a new connection:
        the response if the backend answers anything but C{101}, else its
        C{101} and the protocol, ready to be handed a L{Tunnel}.
        """
        if not uri.startswith(self._origin):
            raise ValueError(f"{uri!r} is not a URL of {self._origin!r}")
        target = uri[len(self._origin) :] or b"/"
        if not headers.hasHeader(b"host"):
            headers.addRawHeader(b"host", self._host)
        try:
            # Persistent, so that Twisted adds no Connection: close.
            request = ClientRequest._construct(method, target, headers, None, True)
        except Exception:
            return fail()
        protocol = UpgradeClientProtocol()
        connecting = self._endpoint.connect(_JustThisProtocol(protocol))
        def cancel(_: object) -> None:
            if connecting.called:
                protocol.transport.abortConnection()
            else:
                connecting.cancel()

        answer: Deferred[IResponse | tuple[Switched, UpgradeClientProtocol]] = Deferred(cancel)

        def connected(_: object) -> None:
            responding = protocol.request(request)

            def switched(switch: Switched) -> None:
                # The request's own Deferred fails once the tunnel ends.
                responding.addErrback(lambda _: None)
                if answer.called:
                    protocol.transport.abortConnection()
                else:
                    answer.callback((switch, protocol))

            protocol.switched.addCallback(switched)
            responding.addCallbacks(
                lambda response: None if answer.called else answer.callback(response),
                lambda failure: None if answer.called else answer.errback(failure),
            )

        connecting.addCallbacks(connected, lambda failure: None if answer.called else answer.errback(failure))
        return answer


class _JustThisProtocol(Factory):
    """Connects one given protocol, without a log line each time (as connectProtocol's factory writes)."""

    noisy = False

    def __init__(self, protocol: Protocol) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        return self._protocol


# A backend's response head larger than this is left to Twisted's parser,
# which refuses it.
_MOST_HEAD = 64 * 1024


@implementer(IHalfCloseableProtocol)
class UpgradeClientProtocol(HTTP11ClientProtocol):
    """
    Twisted's HTTP/1.1 client for one request that asks to switch
    protocols, on a connection of its own.

    Twisted's client ignores a C{101} and waits for another answer, so the
    response head is read here first: a C{101} hands the connection over to
    a L{Tunnel} (C{switched} fires); anything else goes to Twisted's parser
    as usual, and the request's Deferred fires with the response.  Relies on
    C{HTTP11ClientProtocol.dataReceived} feeding its parser and on
    C{connectionLost} failing a request still waiting for its response.
    """

    # TCP, or TLS over TCP; set by makeConnection before any data.
    transport: ITCPTransport

    def __init__(self) -> None:
        # Not pooled: the connection closes once a plain response is read.
        super().__init__(lambda protocol: protocol.transport.loseConnection())
        self.switched: Deferred[Switched] = Deferred()
        self.tunnel: Tunnel | None = None
        self._head = b""
        self._deciding = True

    def dataReceived(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.from_backend(data)
            return
        if not self._deciding:
            super().dataReceived(data)
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0 and len(self._head) <= _MOST_HEAD:
            return
        status = self._head.split(b"\r\n", 1)[0].split(b" ", 2)
        if end >= 0 and len(status) >= 2 and status[1] == b"101":
            self._switch(status[2] if len(status) > 2 else b"", self._head[:end], self._head[end + 4 :])
            return
        self._deciding = False
        head, self._head = self._head, b""
        super().dataReceived(head)

    def _switch(self, phrase: bytes, head: bytes, rest: bytes) -> None:
        self._deciding = False
        self._head = b""
        headers = []
        for line in head.split(b"\r\n")[1:]:
            name, colon, value = line.partition(b":")
            if colon and name and name == name.strip():
                headers.append((name, value.strip(b" \t")))
        self.switched.callback(Switched(phrase, headers, rest))

    def readConnectionLost(self) -> None:
        if self.tunnel is not None:
            self.tunnel.backend_half_closed()
        else:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.backend_closed()
        super().connectionLost(reason)


def backend_address_factory(
    reactor: IReactorTime,
    location: BackendURL,
    keepalive: int,
    connect_timeout: float,
    tls_policy: IPolicyForHTTPS | None = None,
    connect_reactor: object | None = None,
) -> Callable[[str], BackendAddress]:
    """
    Return a function that builds the L{BackendAddress} for one address of
    C{location}.  Requests still name the backend's host, so Agent sends its
    Host (when the client sent none) and, for https, TLS verifies and sends
    SNI for the host name, never the address.

    @param keepalive: idle connections kept per address; 0 opens a new
        connection for every request, as the original tool did.
    @param connect_reactor: what the endpoints connect with; if None,
        C{reactor}.
    """
    connector = connect_reactor if connect_reactor is not None else reactor
    policy = tls_policy

    def make(address: str) -> BackendAddress:
        pool = RetirablePool(reactor, persistent=keepalive > 0)
        if keepalive:
            pool.maxPersistentPerHost = keepalive
        pool.cachedConnectionTimeout = IDLE_BACKEND_TIMEOUT
        tcp = TCP6ClientEndpoint if isIPv6Address(address) else TCP4ClientEndpoint
        endpoint: IStreamClientEndpoint = tcp(
            connector, address, location.port, timeout=connect_timeout
        )
        if location.scheme == "https":
            nonlocal policy
            if policy is None:
                # Built only for https backends: it loads the trust roots.
                policy = BrowserLikePolicyForHTTPS()
            endpoint = wrapClientTLS(
                policy.creatorForNetloc(location.host.encode("ascii"), location.port),
                endpoint,
            )
        return BackendAddress(address, AddressAgent(pool, endpoint, location.origin), pool)

    return make
