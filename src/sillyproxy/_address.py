"""One resolved address of a backend: what sends its requests, and its passive and active health."""

from __future__ import annotations

from enum import Enum
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.web.iweb import IAgent

__all__ = [
    "EJECT_AFTER_FAILURES",
    "EJECT_FIRST",
    "EJECT_MOST",
    "FALL",
    "RISE",
    "BackendAddress",
    "ProbeChange",
]

# Passive health, as nginx's max_fails and Envoy's outlier detection do it:
# this many connection failures in a row eject an address for 10 s, then
# 20, 40, and at most 60 while it keeps failing.
EJECT_AFTER_FAILURES = 3
EJECT_FIRST = 10.0
EJECT_MOST = 60.0

# Active health, like HAProxy's fall 2 / rise 2: one lost probe is noise,
# two are a trend.
FALL = 2
RISE = 2


class Retirable(Protocol):
    """A connection pool that can be closed for good."""

    def retire(self) -> Deferred[None]: ...

    def idle_connections(self) -> int: ...


class ProbeChange(Enum):
    """What a health probe's result did to an address."""

    NONE = "none"
    OUT = "out"
    BACK = "back"


class BackendAddress:
    """
    One address a backend's host name resolved to.

    @ivar address: the IP address, as text.
    @ivar agent: sends requests to this address (in production an
        L{AddressAgent} over C{pool}).
    @ivar pool: the address's keep-alive pool, closed when it is retired;
        None when the agent keeps no connections.
    """

    def __init__(self, address: str, agent: IAgent, pool: Retirable | None = None) -> None:
        self.address = address
        self.agent = agent
        self.pool = pool
        # Passive health: connection failures in a row, until when (clock
        # seconds) the address is out, and after how many ejections in a row.
        self._connect_failures = 0
        self.ejected_until = 0.0
        self._ejections = 0
        # Active health (always passing without C_HEALTH), and the current
        # run of probe results: passing or not, and how many in a row.
        self.passing_health_checks = True
        self._streak_passing = True
        self._streak = 0

    def __repr__(self) -> str:
        return f"<BackendAddress {self.address}>"

    def usable(self, now: float) -> bool:
        """Whether a request may be sent here now."""
        return self.passing_health_checks and self.ejected_until <= now

    def ejected_for(self, now: float) -> float:
        """Seconds until an ejected address comes back; 0 when it is not ejected."""
        return max(0.0, self.ejected_until - now)

    def connected(self) -> bool:
        """
        A request got its response: reset passive health.  Returns True if
        the address had been ejected and is answering again.
        """
        self._connect_failures = 0
        if self._ejections:
            self._ejections = 0
            return True
        return False

    def connect_failed(self, now: float) -> float | None:
        """
        A connection attempt failed.  Returns the seconds of the ejection
        this failure began, or None if it began none.
        """
        self._connect_failures += 1
        if self._connect_failures < EJECT_AFTER_FAILURES:
            return None
        self._connect_failures = 0
        self._ejections += 1
        seconds = min(EJECT_FIRST * 2 ** (self._ejections - 1), EJECT_MOST)
        self.ejected_until = now + seconds
        return seconds

    def probed(self, passed: bool) -> ProbeChange:
        """Record one health probe's result; say whether it took the address out or brought it back."""
        if self._streak_passing == passed:
            self._streak += 1
        else:
            self._streak_passing = passed
            self._streak = 1
        if self.passing_health_checks and not passed and self._streak >= FALL:
            self.passing_health_checks = False
            return ProbeChange.OUT
        if not self.passing_health_checks and passed and self._streak >= RISE:
            self.passing_health_checks = True
            return ProbeChange.BACK
        return ProbeChange.NONE

    def idle_connections(self) -> int:
        return self.pool.idle_connections() if self.pool is not None else 0

    def retire(self) -> Deferred[None] | None:
        """Close the pool for good: the address has left DNS, or the proxy is stopping."""
        return self.pool.retire() if self.pool is not None else None
