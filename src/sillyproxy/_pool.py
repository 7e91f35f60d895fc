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
  - C{client._HTTP11ClientFactory}, the factory the pool connects with;
  - C{_newclient.Request._construct}, which builds the request a pooled
    C{HTTP11ClientProtocol} sends (C{HTTP11ClientProtocol} itself is only
    named, for its C{request} method).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.abstract import isIPv6Address
from twisted.web import client
from twisted.web._newclient import HTTP11ClientProtocol
from twisted.web._newclient import Request as ClientRequest
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from ._address import BackendAddress
from ._config import BackendURL
from ._sweep import Sweep

__all__ = ["AddressAgent", "RetirablePool", "backend_address_factory"]

# Close idle backend connections well before typical server idle timeouts
# (60 s and more), so the pool rarely hands out one the server is closing.
IDLE_BACKEND_TIMEOUT = 30


class _QuietClientFactory(client._HTTP11ClientFactory):
    # Twisted logs "Starting factory" for each new backend connection, which
    # under load is a log line per request and says nothing an operator needs.
    noisy = False


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
        if self.retired:
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

        def send(connection: HTTP11ClientProtocol) -> Deferred[IResponse]:
            return connection.request(request)

        return self._pool.getConnection(self._key, self._endpoint).addCallback(send)


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
