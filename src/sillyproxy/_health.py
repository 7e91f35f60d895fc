"""Active health checks: probe each address of a colour's backend with treq."""

from __future__ import annotations

from collections.abc import Callable

import treq
from treq.client import HTTPClient
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ._pool import AddressPool
from ._upstream import Upstream

__all__ = ["HealthChecker"]

_log = Logger(namespace="sillyproxy.health")

# Like HAProxy's fall 2 / rise 2: one lost probe is noise, two are a trend.
FALL = 2
RISE = 2


def _client_for(address: AddressPool) -> HTTPClient:
    return HTTPClient(address.agent)


class HealthChecker:
    """
    Every C{interval} seconds, GET C{path} from each address of a colour's
    backend.  A 2xx or 3xx answer within the interval passes.  Two failures
    in a row take an address out of rotation, two passes bring it back;
    with every address out the colour is out, and its share goes to the
    other colours.  Every change of state is logged.

    @param client_for: the treq client that probes an address; by default
        one over the address's own pool, so probes reach that address.
    """

    def __init__(
        self,
        upstream: Upstream,
        path: str,
        interval: float,
        clock: IReactorTime,
        client_for: Callable[[AddressPool], HTTPClient] = _client_for,
    ) -> None:
        self._upstream = upstream
        self._url = upstream.backend.origin.decode("ascii") + path
        self._interval = interval
        self._clock = clock
        self._client_for = client_for
        self._loop: LoopingCall | None = None

    def start(self) -> None:
        self._loop = LoopingCall(self.probe_all)
        self._loop.clock = self._clock
        self._loop.start(self._interval, now=True)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def probe_all(self) -> Deferred[object]:
        return gatherResults([self._probe(a) for a in list(self._upstream.addresses)])

    def _probe(self, address: AddressPool) -> Deferred[None]:
        probing = self._client_for(address).get(self._url, timeout=self._interval)

        def answered(response):  # type: ignore[no-untyped-def]
            # Read the body so the connection goes back to the pool.
            return treq.content(response).addCallback(lambda _: 200 <= response.code < 400)

        probing.addCallback(answered)
        probing.addErrback(lambda failure: False)
        probing.addCallback(lambda passed: self._record(address, passed))
        return probing

    def _record(self, address: AddressPool, passed: bool) -> None:
        color = self._upstream.backend.color
        was_available = self._upstream.available
        if address.probe_streak_passing == passed:
            address.probe_streak += 1
        else:
            address.probe_streak_passing = passed
            address.probe_streak = 1
        count = address.probe_streak
        if address.probed_healthy and not passed and count >= FALL:
            address.probed_healthy = False
            _log.warn("{color}: {address} failed {n} health checks; out", color=color, address=address.address, n=count)
        elif not address.probed_healthy and passed and count >= RISE:
            address.probed_healthy = True
            _log.info("{color}: {address} passed {n} health checks; back in", color=color, address=address.address, n=count)
        self._upstream.health_changed()
        now_available = self._upstream.available
        if was_available != now_available:
            _log.warn(
                "{color} is {state}",
                color=color,
                state="back in rotation" if now_available else "out of rotation: no healthy address",
            )
