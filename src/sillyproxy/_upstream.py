"""A colour's backend as the set of addresses its host name resolves to, balanced round-robin."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, fail, gatherResults
from twisted.internet.interfaces import (
    IHostnameResolver,
    IReactorTime,
    IResolutionReceiver,
)
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IAgent, IBodyProducer, IResponse
from twisted.web.http_headers import Headers
from zope.interface import implementer

from ._address import EJECT_AFTER_FAILURES, BackendAddress
from ._config import Backend
from ._failures import NoHealthyAddress, is_connect_failure
from ._tunnel import Switched

if TYPE_CHECKING:
    from ._pool import AddressAgent, UpgradeClientProtocol

_T = TypeVar("_T")

__all__ = ["HealthCheck", "ResolvingUpstream", "resolve_all"]

_log = Logger(namespace="sillyproxy.upstream")


class HealthCheck(Protocol):
    """Active health checks of an upstream's addresses, started and stopped with it."""

    def start(self, upstream: ResolvingUpstream) -> None: ...

    def stop(self) -> None: ...


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


class ResolvingUpstream:
    """
    Send a colour's requests across all of its backend's addresses.

    The host name is resolved at start and every C{refresh} seconds, the way
    Swarm's dnsrr and C{tasks.<service>} names or a Kubernetes headless
    Service publish their replicas.  Each address has its own keep-alive
    pool; requests take the addresses in turn (round-robin).  An address that
    leaves DNS gets no new requests and its idle connections close; one that
    appears joins the rotation.  If a lookup fails, the last known addresses
    stay in use; a host name that has never resolved leaves the colour out
    of rotation.  An address that fails to connect 3 times in a row is left
    out for a while (passive health), and one that fails its active health
    checks until it passes them again.

    @param make_address: builds the L{BackendAddress} (pool and agent) for
        one address.
    @param health_check: probes the addresses while this runs; None for no
        active checks.
    """

    def __init__(
        self,
        backend: Backend,
        resolver: IHostnameResolver,
        clock: IReactorTime,
        make_address: Callable[[str], BackendAddress],
        refresh: float,
        health_check: HealthCheck | None = None,
    ) -> None:
        self.backend = backend
        self._resolver = resolver
        self._clock = clock
        self._make_address = make_address
        self._refresh = refresh
        self._health_check = health_check
        self._host = backend.location.host
        self._port = backend.location.port
        self._literal = isIPAddress(self._host) or isIPv6Address(self._host)
        self._addresses: list[BackendAddress] = []
        self._labels: dict[str, str] = {}
        self._next = 0
        self._resolved_once = False
        self._waiting: list[Deferred[None]] = []
        self._loop: LoopingCall | None = None
        self._failing = False
        # So the common case (every address fine) skips checking each one:
        # until when some address may be ejected, and how many fail probes.
        self._ejected_until = 0.0
        self._failing_probes = 0

    @property
    def addresses(self) -> Sequence[BackendAddress]:
        """The addresses in rotation order (sorted)."""
        return self._addresses

    def start(self) -> None:
        if self._literal:
            self._update([self._host])
        else:
            self._loop = LoopingCall(self.refresh)
            self._loop.clock = self._clock
            self._loop.start(self._refresh, now=True)
        if self._health_check is not None:
            self._health_check.start(self)

    def stop(self) -> Deferred[None]:
        """Stop resolving and probing, and close every idle connection."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._health_check is not None:
            self._health_check.stop()
        closing = [a.retire() for a in self._addresses]
        return gatherResults([d for d in closing if d is not None]).addCallback(lambda _: None)

    def refresh(self) -> Deferred[None]:
        """Look the host name up again and adopt what it resolves to."""
        return (
            resolve_all(self._resolver, self._host, self._port)
            .addCallback(self._update)
            .addErrback(self._lookup_failed)
        )

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
                kept = ", ".join(a.address for a in self._addresses) or "none"
                _log.warn(
                    "{color}: {host} resolved to no address; keeping {kept}",
                    color=self.backend.color,
                    host=self._host,
                    kept=kept,
                )
        else:
            self._failing = False
            current = {a.address: a for a in self._addresses}
            wanted = sorted(found)
            if wanted != [a.address for a in self._addresses]:
                self._addresses = [
                    current.pop(a) if a in current else self._make_address(a) for a in wanted
                ]
                self._labels = {a: _label(a, self._port) for a in wanted}
                for gone in current.values():
                    gone.retire()
                self.health_changed()
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

    def idle_connections(self) -> int:
        """Idle pooled connections to this backend's addresses."""
        return sum(a.idle_connections() for a in self._addresses)

    def health_changed(self) -> None:
        """An address passed or failed its probes: recount."""
        self._failing_probes = sum(not a.passing_health_checks for a in self._addresses)

    def _all_usable(self, now: float) -> bool:
        return not self._failing_probes and now >= self._ejected_until

    @property
    def available(self) -> bool:
        """Whether a request sent now could go to a usable address."""
        if not self._addresses:
            # Waiting for the first lookup: requests wait for its answer.
            # A name that resolved to nothing serves nothing until it does.
            return not self._resolved_once
        now = self._clock.seconds()
        return self._all_usable(now) or any(a.usable(now) for a in self._addresses)

    def _choose(self) -> BackendAddress | None:
        addresses = self._addresses
        count = len(addresses)
        now = self._clock.seconds()
        if self._all_usable(now):
            self._next = (self._next + 1) % count
            return addresses[self._next]
        for _ in range(count):
            self._next = (self._next + 1) % count
            address = addresses[self._next]
            if address.usable(now):
                return address
        return None

    def _succeeded(self, response: _T, address: BackendAddress) -> _T:
        if address.connected():
            _log.info(
                "{color}: {address} is answering again",
                color=self.backend.color,
                address=address.address,
            )
        return response

    def _failed(self, failure: Failure, address: BackendAddress) -> Failure:
        if is_connect_failure(failure):
            seconds = address.connect_failed(self._clock.seconds())
            if seconds is not None:
                self._ejected_until = max(self._ejected_until, address.ejected_until)
                _log.warn(
                    "{color}: {address} failed to connect {count} times in a row; "
                    "out for {seconds}s",
                    color=self.backend.color,
                    address=address.address,
                    count=EJECT_AFTER_FAILURES,
                    seconds=seconds,
                )
        return failure

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
        sent_to: Callable[[str], None] | None = None,
    ) -> Deferred[IResponse]:
        """
        Send a request to the next usable address.

        @param sent_to: told the C{address:port} the request goes to.
        """
        return self._via_address(
            lambda agent: agent.request(method, uri, headers, bodyProducer), sent_to
        )

    def upgrade(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers,
        sent_to: Callable[[str], None] | None = None,
    ) -> Deferred[IResponse | tuple[Switched, UpgradeClientProtocol]]:
        """
        Send a request that asks to switch protocols to the next usable
        address, on a connection of its own (see L{AddressAgent.upgrade}).
        """
        return self._via_address(
            lambda agent: cast("AddressAgent", agent).upgrade(method, uri, headers), sent_to
        )

    def _via_address(
        self, send: Callable[[IAgent], Deferred[_T]], sent_to: Callable[[str], None] | None
    ) -> Deferred[_T]:
        if self._addresses:
            address = self._choose()
            if address is None:
                return fail(NoHealthyAddress(f"every address of {self._host} is out"))
            if sent_to is not None:
                sent_to(self._labels[address.address])
            sending = send(address.agent)
            sending.addCallbacks(
                self._succeeded, self._failed, callbackArgs=(address,), errbackArgs=(address,)
            )
            return sending
        if self._resolved_once:
            return fail(NoHealthyAddress(f"{self._host} has no addresses"))
        # The first lookup is still running: wait for it rather than fail
        # the requests that arrive in the proxy's first moments.
        ready: Deferred[None] = Deferred(lambda d: self._waiting.remove(d))
        self._waiting.append(ready)
        return ready.addCallback(lambda _: self._via_address(send, sent_to))


def _label(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
