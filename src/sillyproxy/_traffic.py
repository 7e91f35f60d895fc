"""
What each colour served recently, second by second, for /status and the
dashboard: requests per second, error rate and latency percentiles over
the last 10 s, and five minutes of history.

Counted as requests end, in fixed-size rings, so memory does not grow
with traffic; latencies go into log-spaced buckets about 9 % wide, so a
percentile is good to that much.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ._accesslog import AccessRecord
from ._outcome import Outcome

__all__ = ["ColorTraffic", "RecentTraffic", "Summary", "is_failure"]

HISTORY_SECONDS = 300
SUMMARY_SECONDS = 10

# Latency buckets: bucket 0 holds everything under 0.1 ms; bucket i
# above it starts at 0.1 ms * 2 ** ((i - 1) / 8); the last one holds
# everything from about 60 s up.
_FLOOR = 0.0001
_PER_DOUBLING = 8
_BUCKETS = 2 + int(math.log2(60 / _FLOOR) * _PER_DOUBLING)
_log2 = math.log2

_BROKEN_OFF = frozenset({Outcome.FAILED_MID_BODY.value, Outcome.STALLED_MID_BODY.value})


def is_failure(record: AccessRecord) -> bool:
    """
    Whether a request counts against its colour: a 5xx (the backend's or
    the proxy's own 502, 503 and 504) or a response that broke off.
    """
    return record.status >= 500 or record.outcome in _BROKEN_OFF


def _bucket(seconds: float) -> int:
    if seconds < _FLOOR:
        return 0
    return min(_BUCKETS - 1, 1 + int(_log2(seconds / _FLOOR) * _PER_DOUBLING))


def _bucket_middle(index: int) -> float:
    """A latency that stands for bucket C{index}: its geometric middle, in seconds."""
    if index == 0:
        return _FLOOR / 2
    return _FLOOR * 2 ** ((index - 0.5) / _PER_DOUBLING)


class Summary:
    """
    One colour's last seconds: the requests it answered (C{failures} of
    them failed) and its attempts that failed over to another colour.
    """

    __slots__ = ("requests", "failures", "failovers", "seconds", "latencies")

    def __init__(
        self, requests: int, failures: int, failovers: int, seconds: int, latencies: list[int]
    ) -> None:
        self.requests = requests
        self.failures = failures
        self.failovers = failovers
        self.seconds = seconds
        self.latencies = latencies

    @property
    def requests_per_second(self) -> float:
        """Requests answered per second (failed-over attempts are not answers)."""
        return self.requests / self.seconds

    @property
    def error_rate(self) -> float | None:
        """The share of attempts that failed, failovers included, or None when there were none."""
        attempts = self.requests + self.failovers
        return (self.failures + self.failovers) / attempts if attempts else None

    def percentile(self, fraction: float) -> float | None:
        """The latency (seconds) that C{fraction} of timed requests took at most, or None."""
        timed = sum(self.latencies)
        if not timed:
            return None
        # The rank of the wanted request, counted from 1 (nearest-rank).
        rank = max(1, math.ceil(fraction * timed))
        seen = 0
        for index, count in enumerate(self.latencies):
            seen += count
            if seen >= rank:
                return _bucket_middle(index)
        raise AssertionError("unreachable: the ranks add up to the total")


class ColorTraffic:
    """One colour's per-second counts over the last five minutes."""

    __slots__ = ("_seconds", "_requests", "_failures", "_failovers", "_latencies")

    def __init__(self) -> None:
        # Which second each slot holds; -1: none yet.
        self._seconds = [-1] * HISTORY_SECONDS
        self._requests = [0] * HISTORY_SECONDS
        self._failures = [0] * HISTORY_SECONDS
        self._failovers = [0] * HISTORY_SECONDS
        self._latencies: list[list[int] | None] = [None] * HISTORY_SECONDS

    def _slot(self, now: float) -> int:
        """The index of C{now}'s second, emptied first if it held an older one."""
        second = int(now)
        index = second % HISTORY_SECONDS
        if self._seconds[index] != second:
            self._seconds[index] = second
            self._requests[index] = self._failures[index] = self._failovers[index] = 0
            self._latencies[index] = None
        return index

    def failed_over(self, now: float) -> None:
        """Count an attempt that failed at C{now} and went on to another colour."""
        self._failovers[self._slot(now)] += 1

    def add(self, now: float, failed: bool, duration: float | None) -> None:
        """Count a request answered at C{now}; C{duration} None: not timed (a tunnel)."""
        index = self._slot(now)
        self._requests[index] += 1
        if failed:
            self._failures[index] += 1
        if duration is not None:
            latencies = self._latencies[index]
            if latencies is None:
                latencies = self._latencies[index] = [0] * _BUCKETS
            latencies[_bucket(duration)] += 1

    def _slots(self, now: float, seconds: int) -> Iterable[int]:
        """The slots of the C{seconds} whole seconds before the one C{now} is in."""
        current = int(now)
        for second in range(current - seconds, current):
            index = second % HISTORY_SECONDS
            if self._seconds[index] == second:
                yield index

    def summary(self, now: float, seconds: int = SUMMARY_SECONDS) -> Summary:
        requests = failures = failovers = 0
        latencies = [0] * _BUCKETS
        for index in self._slots(now, seconds):
            requests += self._requests[index]
            failures += self._failures[index]
            failovers += self._failovers[index]
            counted = self._latencies[index]
            if counted is not None:
                latencies = [a + b for a, b in zip(latencies, counted)]
        return Summary(requests, failures, failovers, seconds, latencies)

    def history(self, now: float) -> tuple[list[int], list[float | None]]:
        """
        Requests answered and error rate (failovers included) for each of
        the last five minutes' whole seconds, oldest first.
        """
        current = int(now)
        requests: list[int] = []
        rates: list[float | None] = []
        for second in range(current - HISTORY_SECONDS, current):
            index = second % HISTORY_SECONDS
            answered = failovers = 0
            if self._seconds[index] == second:
                answered, failovers = self._requests[index], self._failovers[index]
            requests.append(answered)
            attempts = answered + failovers
            rates.append(
                (self._failures[index] + failovers) / attempts if attempts else None
            )
        return requests, rates


class RecentTraffic:
    """Every colour's L{ColorTraffic}, fed with access records and failed-over attempts."""

    def __init__(self, colors: Iterable[str]) -> None:
        self.colors = {color: ColorTraffic() for color in colors}

    def observe(self, record: AccessRecord, now: float) -> bool:
        """
        Count a finished request under its colour; return whether it
        failed (False, too, for a request no colour served).
        """
        traffic = self.colors.get(record.color)
        if traffic is None:
            return False
        failed = is_failure(record)
        # A tunnel's duration is how long it stayed open, not a latency.
        traffic.add(now, failed, record.duration if record.status != 101 else None)
        return failed

    def failed_over(self, color: str, now: float) -> None:
        """An attempt on C{color} failed and the request went to another colour."""
        traffic = self.colors.get(color)
        if traffic is not None:
            traffic.failed_over(now)
