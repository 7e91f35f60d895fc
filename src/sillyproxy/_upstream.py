"""A colour's backend as the set of addresses its host name resolves to, balanced round-robin."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, fail, gatherResults
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import (
    IHostnameResolver,
    IReactorTime,
    IResolutionReceiver,
)
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.iweb import IAgent, IBodyProducer, IResponse
from twisted.web.http_headers import Headers
from zope.interface import implementer

from ._config import Backend
from ._pool import AddressPool

__all__ = ["Upstream", "resolve_all"]

_log = Logger(namespace="sillyproxy.upstream")


def resolve_all(resolver: IHostnameResolver, host: str, port: int) -> Deferred[list[str]]:
    """Resolve C{host} to every address it has (IPv4 and IPv6), deduplicated, in order."""
    found: Deferred[list[str]] = Deferred()
    addresses: list[str] = []

    @implementer(IResolutionReceiver)
    class Receiver:
        def resolutionBegan(self, resolution: object) -> None:
            pass

        def addressResolved(self, address: object) -> None:
            host = getattr(address, "host", None)
            if isinstance(host, str) and host not in addresses:
                addresses.append(host)

        def resolutionComplete(self) -> None:
            found.callback(addresses)

    resolver.resolveHostName(Receiver(), host, port)
    return found


@implementer(IAgent)
class Upstream:
    """
    Send a colour's requests across all of its backend's addresses.

    The host name is resolved at start and every C{refresh} seconds, the way
    Swarm's dnsrr and C{tasks.<service>} names or a Kubernetes headless
    Service publish their replicas.  Each address has its own keep-alive
    pool; requests take the addresses in turn (round-robin).  An address that
    leaves DNS gets no new requests and its idle connections close; one that
    appears joins the rotation.  If a lookup fails, the last known addresses
    stay in use.

    @param make_address: builds the pool and agent for one address.
    """

    def __init__(
        self,
        backend: Backend,
        resolver: IHostnameResolver,
        clock: IReactorTime,
        make_address: Callable[[str], AddressPool],
        refresh: float,
    ) -> None:
        self.backend = backend
        self._resolver = resolver
        self._clock = clock
        self._make_address = make_address
        self._refresh = refresh
        self._host = backend.location.host
        self._literal = isIPAddress(self._host) or isIPv6Address(self._host)
        self.addresses: list[AddressPool] = []
        self._next = 0
        self._resolved_once = False
        self._waiting: list[Deferred[None]] = []
        self._loop: LoopingCall | None = None
        self._failing = False

    def start(self) -> None:
        if self._literal:
            self._update([self._host])
            return
        self._loop = LoopingCall(self.refresh)
        self._loop.clock = self._clock
        self._loop.start(self._refresh, now=True)

    def stop(self) -> Deferred[object]:
        """Stop resolving and close every idle connection."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        closing = [a.retire() for a in self.addresses]
        return gatherResults([d for d in closing if d is not None])

    def refresh(self) -> Deferred[None]:
        """Look the host name up again and adopt what it resolves to."""
        resolving = resolve_all(self._resolver, self._host, self.backend.location.port)
        resolving.addCallback(self._update)
        resolving.addErrback(self._lookup_failed)
        return resolving

    def _lookup_failed(self, failure: object) -> None:
        _log.warn(
            "{color}: looking up {host} failed: {failure}",
            color=self.backend.color,
            host=self._host,
            failure=failure,
        )
        self._update([])

    def _update(self, found: list[str]) -> None:
        first = not self._resolved_once
        self._resolved_once = True
        if not found:
            if not self._failing:
                self._failing = True
                kept = ", ".join(a.address for a in self.addresses) or "none"
                _log.warn(
                    "{color}: {host} resolved to no address; keeping {kept}",
                    color=self.backend.color,
                    host=self._host,
                    kept=kept,
                )
        else:
            self._failing = False
            current = {a.address: a for a in self.addresses}
            wanted = sorted(found)
            if wanted != [a.address for a in self.addresses]:
                self.addresses = [current.pop(a, None) or self._make_address(a) for a in wanted]
                for gone in current.values():
                    gone.retire()
                _log.info(
                    "{color}: {host} -> {addresses}",
                    color=self.backend.color,
                    host=self._host,
                    addresses=", ".join(wanted),
                )
        if first:
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(None)

    def _choose(self) -> AddressPool:
        addresses = self.addresses
        self._next = (self._next + 1) % len(addresses)
        return addresses[self._next]

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> Deferred[IResponse]:
        if self.addresses:
            return self._choose().agent.request(method, uri, headers, bodyProducer)
        if self._resolved_once:
            return fail(DNSLookupError(f"{self._host} has no addresses"))
        # The first lookup is still running: wait for it rather than fail
        # the requests that arrive in the proxy's first moments.
        ready: Deferred[None] = Deferred(lambda d: self._waiting.remove(d))
        self._waiting.append(ready)
        return ready.addCallback(
            lambda _: self.request(method, uri, headers, bodyProducer)
        )
