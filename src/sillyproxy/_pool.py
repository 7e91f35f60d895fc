"""Connection pools for one backend address: quiet, retirable, and built with the right endpoint."""

from __future__ import annotations

from attrs import define
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.abstract import isIPv6Address
from twisted.web import client
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IPolicyForHTTPS
from zope.interface import implementer

from ._config import BackendURL

__all__ = ["AddressPool", "RetirablePool", "address_pool_factory"]

# Close idle backend connections well before typical server idle timeouts
# (60 s and more), so the pool rarely hands out one the server is closing.
IDLE_BACKEND_TIMEOUT = 30


class _QuietClientFactory(client._HTTP11ClientFactory):
    # Twisted logs "Starting factory" for each new backend connection, which
    # under load is a log line per request and says nothing an operator needs.
    noisy = False


class RetirablePool(client.HTTPConnectionPool):
    """
    An HTTPConnectionPool whose connections start silently and which can be
    retired: once an address leaves DNS, its idle connections close at once
    and connections that finish their request close instead of idling.
    """

    _factory = _QuietClientFactory
    retired = False

    def retire(self) -> Deferred[None]:
        self.retired = True
        return self.closeCachedConnections()

    def _putConnection(self, key, connection):  # type: ignore[no-untyped-def]
        if self.retired:
            connection.transport.loseConnection()
            return
        super()._putConnection(key, connection)


@implementer(IAgentEndpointFactory)
class _FixedEndpoint:
    """Always connect to one address, whatever host the URL names."""

    def __init__(self, endpoint: IStreamClientEndpoint) -> None:
        self._endpoint = endpoint

    def endpointForURI(self, uri):  # type: ignore[no-untyped-def]
        return self._endpoint


@define
class AddressPool:
    """One resolved address of a backend, with its own pool and agent."""

    address: str
    agent: IAgent
    pool: RetirablePool | None = None

    def retire(self) -> Deferred[None] | None:
        return self.pool.retire() if self.pool is not None else None


def address_pool_factory(
    reactor: object,
    location: BackendURL,
    keepalive: int,
    connect_timeout: float,
    tls_policy: IPolicyForHTTPS | None = None,
):  # type: ignore[no-untyped-def]
    """
    Return a function that builds the L{AddressPool} for one address of
    C{location}.  Requests still name the backend's host, so Agent sends its
    Host (when the client sent none) and, for https, TLS verifies and sends
    SNI for the host name, never the address.

    @param keepalive: idle connections kept per address; 0 opens a new
        connection for every request, as the original tool did.
    """
    policy = tls_policy if tls_policy is not None else BrowserLikePolicyForHTTPS()

    def make(address: str) -> AddressPool:
        pool = RetirablePool(reactor, persistent=keepalive > 0)
        if keepalive:
            pool.maxPersistentPerHost = keepalive
        pool.cachedConnectionTimeout = IDLE_BACKEND_TIMEOUT
        tcp = TCP6ClientEndpoint if isIPv6Address(address) else TCP4ClientEndpoint
        endpoint: IStreamClientEndpoint = tcp(
            reactor, address, location.port, timeout=connect_timeout
        )
        if location.scheme == "https":
            endpoint = wrapClientTLS(
                policy.creatorForNetloc(location.host.encode("ascii"), location.port),
                endpoint,
            )
        agent = Agent.usingEndpointFactory(reactor, _FixedEndpoint(endpoint), pool=pool)
        return AddressPool(address, agent, pool)

    return make
