"""
Automatic rollback: each armed colour's error rate over a sliding window
of its own requests, and the decision to roll it back.

The window is cut into slots of a thirtieth of its length, counted as
requests end, so memory stays fixed whatever the traffic, and the window
slides in steps of a slot (one second for the default 30 s).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["ErrorWindow", "RollbackGuard"]

_SLOTS = 30


class ErrorWindow:
    """Requests and failures among them over the last C{window} seconds."""

    __slots__ = ("_width", "_slot_ids", "_requests", "_failures", "_last", "requests", "failures")

    def __init__(self, window: float, slots: int = _SLOTS) -> None:
        self._width = window / slots
        self._slot_ids = [-1] * slots
        self._requests = [0] * slots
        self._failures = [0] * slots
        # The newest slot counted so far; slots older than it by a whole
        # window have already been taken out of the totals.
        self._last = -1
        self.requests = 0
        self.failures = 0

    def _advance(self, slot: int) -> None:
        slots = len(self._slot_ids)
        if slot <= self._last - slots:
            # The clock went back by more than the window (corrected after a
            # jump ahead): what was counted is in the future; start afresh.
            self._slot_ids = [-1] * slots
            self._requests = [0] * slots
            self._failures = [0] * slots
            self.requests = self.failures = 0
            self._last = slot - 1
        if slot <= self._last:
            return
        # Empty the slots the window has slid past since the last event.
        first = max(self._last + 1, slot - slots + 1)
        for expired in range(first, slot + 1):
            index = expired % slots
            if self._slot_ids[index] != expired:
                self.requests -= self._requests[index]
                self.failures -= self._failures[index]
                self._slot_ids[index] = expired
                self._requests[index] = self._failures[index] = 0
        self._last = slot

    def add(self, now: float, failed: bool) -> None:
        """Count a request that ended at C{now}, failed or not."""
        slot = int(now // self._width)
        self._advance(slot)
        index = slot % len(self._slot_ids)
        self._requests[index] += 1
        self.requests += 1
        if failed:
            self._failures[index] += 1
            self.failures += 1

    def totals(self, now: float) -> tuple[int, int]:
        """(requests, failures) within the window ending at C{now}."""
        self._advance(int(now // self._width))
        return self.requests, self.failures


class RollbackGuard:
    """
    Watches the colours armed for rollback (C{C_ROLLBACK_ERROR_RATE}) and
    rolls one back once, with at least C{min_requests} of its requests in
    the window, the share that failed exceeds its threshold.

    @param thresholds: colour -> the error rate (0 to 1) it may not exceed.
    @param roll_back: called with the colour and the reason; returns
        whether the colour was rolled back (it may refuse, as for the last
        colour able to serve).
    @param decide: False for a worker, which only counts: its supervisor
        judges the windows of every worker together (L{judge}).
    """

    def __init__(
        self,
        thresholds: Mapping[str, float],
        window: float,
        min_requests: int,
        roll_back: Callable[[str, str], bool],
        decide: bool = True,
    ) -> None:
        self._thresholds = dict(thresholds)
        self._window = window
        self._min_requests = min_requests
        self._roll_back = roll_back
        self._decide = decide
        self._windows = {color: ErrorWindow(window) for color in thresholds}

    def observe(self, color: str, now: float, failed: bool) -> None:
        """A request that C{color} answered ended at C{now} (C{failed}: a 5xx, or it broke off)."""
        window = self._windows.get(color)
        if window is None:
            return
        window.add(now, failed)
        if self._decide:
            self.judge(color, window.requests, window.failures)

    def totals(self, now: float) -> dict[str, tuple[int, int]]:
        """Each watched colour's (requests, failures) within the window ending at C{now}."""
        return {color: window.totals(now) for color, window in self._windows.items()}

    def judge(self, color: str, requests: int, failures: int) -> None:
        """Roll C{color} back if these counts of its window call for it."""
        if color not in self._windows or requests < self._min_requests or not failures:
            return
        threshold = self._thresholds[color]
        rate = failures / requests
        if rate <= threshold:
            return
        reason = (
            f"error rate {rate:.3f} over the last {self._window:g} s "
            f"({failures} of {requests} requests failed) exceeds "
            f"{color.upper()}_ROLLBACK_ERROR_RATE={threshold:g}"
        )
        if self._roll_back(color, reason):
            # Rolled back until the process restarts: nothing more to watch.
            del self._windows[color]
