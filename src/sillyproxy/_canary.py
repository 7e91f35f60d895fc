"""
What the proxy learns from its own traffic and what it does about it: each
colour's recent traffic (for /status and the dashboard) and the rollback
decisions, applied to the rollout's weights.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet.interfaces import IReactorTime

from ._accesslog import AccessRecord
from ._analysis import RollbackGuard
from ._config import Backend
from ._rollout import Rollout
from ._routing import Router
from ._traffic import RecentTraffic

__all__ = ["Canary"]


class Canary:
    """
    The ramp, the rollbacks and the traffic that decides them, for one
    process.  Feed it every finished request (L{observe}) and every attempt
    that failed over to another colour (L{failed_over}).

    @param window: the rollback analysis window, in seconds
        (C{SILLYPROXY_ANALYSIS_WINDOW}).
    @param min_requests: how many of a colour's requests the window must
        hold before it is judged (C{SILLYPROXY_ANALYSIS_MIN_REQUESTS}).
    @param decide: False in a worker, whose supervisor judges the windows
        of all its workers together and tells each the verdict.
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        router: Router,
        clock: IReactorTime,
        window: float = 30.0,
        min_requests: int = 20,
        decide: bool = True,
    ) -> None:
        self._clock = clock
        self.rollout = Rollout(backends, router, clock)
        self.traffic = RecentTraffic(b.color for b in backends)
        self.guard = RollbackGuard(
            {b.color: b.rollback_error_rate for b in backends if b.rollback_error_rate is not None},
            window,
            min_requests,
            self.rollout.roll_back,
            decide=decide,
        )

    def observe(self, record: AccessRecord) -> None:
        """A request ended (its access record)."""
        # When it ended: the exchange read the clock for the duration already.
        now = record.time + record.duration
        failed = self.traffic.observe(record, now)
        self.guard.observe(record.color, now, failed)

    def failed_over(self, color: str) -> None:
        """An attempt on C{color} failed and the request was sent to another colour."""
        now = self._clock.seconds()
        self.traffic.failed_over(color, now)
        self.guard.observe(color, now, True)
