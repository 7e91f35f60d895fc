"""Active health checks: probe each address of a colour's backend with treq."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import treq
from treq.client import HTTPClient
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.iweb import IResponse

from ._address import FALL, RISE, BackendAddress, ProbeChange
from ._upstream import ResolvingUpstream

__all__ = ["HealthChecker"]

_log = Logger(namespace="sillyproxy.health")


def _client_for(address: BackendAddress) -> HTTPClient:
    return HTTPClient(address.agent)


class HealthChecker:
    """
    Every C{interval} seconds, GET C{path} from each address of a colour's
    backend.  A 2xx or 3xx answer within the interval passes.  Two failures
    in a row take an address out of rotation, two passes bring it back;
    with every address out the colour is out, and its share goes to the
    other colours.  Every change of state is logged.

    Built before the upstream it checks, which is handed over by
    L{ResolvingUpstream.start}.

    @param clock: schedules the probes and times them out.
    @param client_for: the treq client that probes an address; by default
        one over the address's own pool, so probes reach that address.
    """

    def __init__(
        self,
        path: str,
        interval: float,
        clock: IReactorTime,
        client_for: Callable[[BackendAddress], HTTPClient] = _client_for,
    ) -> None:
        self._path = path
        self._interval = interval
        self._clock = clock
        self._client_for = client_for
        self._loop: LoopingCall | None = None
        self._upstream: ResolvingUpstream | None = None

    def start(self, upstream: ResolvingUpstream) -> None:
        self._upstream = upstream
        self._url = upstream.backend.origin.decode("ascii") + self._path
        self._loop = LoopingCall(self.probe_all)
        self._loop.clock = self._clock
        self._loop.start(self._interval, now=True)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def probe_all(self) -> Deferred[Any]:
        assert self._upstream is not None, "probe_all before start"
        return gatherResults([self._probe(a) for a in list(self._upstream.addresses)])

    def _probe(self, address: BackendAddress) -> Deferred[None]:
        asked = self._client_for(address).get(self._url)
        # On the injected clock, not treq's default of the global reactor.
        asked.addTimeout(self._interval, self._clock)

        def answered(response: IResponse) -> Deferred[bool]:
            # Read the body so the connection goes back to the pool.
            return treq.content(response).addCallback(lambda _: 200 <= response.code < 400)

        return (
            asked.addCallback(answered)
            .addErrback(lambda failure: False)
            .addCallback(lambda passed: self._record(address, passed))
        )

    def _record(self, address: BackendAddress, passed: bool) -> None:
        upstream = self._upstream
        assert upstream is not None
        color = upstream.backend.color
        was_available = upstream.available
        change = address.probed(passed)
        if change is ProbeChange.OUT:
            _log.warn("{color}: {address} failed {n} health checks; out", color=color, address=address.address, n=FALL)
        elif change is ProbeChange.BACK:
            _log.info("{color}: {address} passed {n} health checks; back in", color=color, address=address.address, n=RISE)
        upstream.health_changed()
        now_available = upstream.available
        if was_available != now_available:
            _log.warn(
                "{color} is {state}",
                color=color,
                state="back in rotation" if now_available else "out of rotation: no healthy address",
            )
