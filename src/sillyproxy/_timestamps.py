"""Times as text: HTTP dates, log timestamps and RFC 3339, the per-second ones formatted once a second."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

from twisted.web.http import datetimeToString

__all__ = ["PerSecond", "http_date", "log_timestamp", "rfc3339"]

T = TypeVar("T")


class PerSecond(Generic[T]):
    """
    C{format(whole_second)}, computed once per second and reused: under
    load many requests end within the same second, and strftime is not
    free.
    """

    def __init__(self, format: Callable[[int], T]) -> None:
        self._format = format
        self._second = -1
        self._text: T | None = None

    def __call__(self, seconds: float) -> T:
        second = int(seconds)
        if second != self._second:
            self._text = self._format(second)
            self._second = second
        return self._text  # type: ignore[return-value]


def _log_timestamp(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(second))


# Each one caches the text of the last second it was asked for.
http_date: PerSecond[bytes] = PerSecond(datetimeToString)
log_timestamp: PerSecond[str] = PerSecond(_log_timestamp)


def rfc3339(seconds: float) -> str:
    """UTC with milliseconds, as JSON logs carry it: C{2026-12-02T03:33:51.250Z}."""
    whole = int(seconds)
    milliseconds = int((seconds - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{milliseconds:03d}Z"
