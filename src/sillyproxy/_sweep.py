"""One timer that checks many deadlines, instead of a timer set and cancelled per request."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["Sweep"]


class Sweep:
    """
    Call C{check(now)} every C{interval} seconds for as long as it returns
    True; L{wake} starts it again when there is new work.

    A deadline checked this way is enforced to within C{interval}, which
    the owner picks as a fraction of its shortest limit.  Setting and
    cancelling a DelayedCall around every request costs more than the
    request's own bookkeeping.
    """

    def __init__(
        self, clock: IReactorTime, interval: float, check: Callable[[float], bool]
    ) -> None:
        self._clock = clock
        self.interval = interval
        self._check = check
        self._call: IDelayedCall | None = None

    @property
    def running(self) -> bool:
        return self._call is not None

    def wake(self) -> None:
        """Make sure a check is coming (a no-op when one already is)."""
        if self._call is None:
            self._call = self._clock.callLater(self.interval, self._run)

    def stop(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None

    def _run(self) -> None:
        self._call = None
        if self._check(self._clock.seconds()):
            self.wake()
