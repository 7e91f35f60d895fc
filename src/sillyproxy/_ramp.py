"""
A colour's step ramp, as pure functions of the configuration and the clock:
reading C{C_RAMP}, C{C_RAMP_START} and C{C_RAMP_STEP}, which step holds at
a moment, and the weights that give the ramping colour its step's share.

The start is an absolute time, so every replica, worker and restarted
process computes the same step at the same moment without talking to the
others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from attrs import frozen

__all__ = [
    "PERCENT_SCALE",
    "Ramp",
    "RampPosition",
    "parse_duration",
    "parse_percentages",
    "parse_rfc3339",
    "ramp_weights",
]

# A percentage becomes a whole number of ten-thousandths of a percent:
# weights stay integers (the weighted draw and the sticky hash use them),
# and 0.0001 % is finer than any canary needs.
PERCENT_SCALE = 10_000
_HUNDRED = 100 * PERCENT_SCALE

# RFC 3339 section 5.6 date-time, with the zone required.  Leap seconds
# (:60) are refused: no clock the proxy reads ever shows one.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z"
)
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([smh]?)\Z")
# Plain decimals: float() alone would take 1_0, 2e1, +5, nan and inf.
_PERCENT = re.compile(r"[0-9]+(?:\.([0-9]*))?\Z")
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
# A ramp step longer than a year is a typo, not a rollout; one shorter than a
# second is one no replica's clock would agree on.
_MIN_STEP = 1.0
_MAX_STEP = 366 * 86400.0


def parse_percentages(text: str) -> tuple[float, ...]:
    """
    Parse a ramp: comma-separated percentages, strictly increasing, each
    from 0 to 100, up to 4 decimals (C{1,5,25,50,100}, C{0.5,2.5}).

    @raise ValueError: with a short reason.
    """
    percents: list[float] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise ValueError("an empty item")
        match = _PERCENT.match(item)
        if match is None:
            raise ValueError(f"{item!r} is not a percentage")
        if len(match.group(1) or "") > 4:
            # Weights keep ten-thousandths of a percent (PERCENT_SCALE).
            raise ValueError(f"{item!r} has more than 4 decimals")
        percent = float(item)
        if not 0 <= percent <= 100:
            raise ValueError(f"{item} is not from 0 to 100")
        if percents and percent <= percents[-1]:
            raise ValueError(f"not strictly increasing ({percents[-1]:g} then {item})")
        percents.append(percent)
    return tuple(percents)


def parse_rfc3339(text: str) -> float:
    """
    Parse an RFC 3339 date-time with a zone (C{2026-12-01T10:00:00Z},
    C{2026-12-01T11:00:00.5+01:00}) into seconds since the epoch.

    @raise ValueError: with a short reason.
    """
    match = _RFC3339.match(text.strip())
    if match is None:
        raise ValueError("not an RFC 3339 time with a zone, such as 2026-12-01T10:00:00Z")
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    fraction, utc, sign, zone_hours, zone_minutes = match.group(7, 8, 9, 10, 11)
    if utc:
        zone = timezone.utc
    else:
        if int(zone_hours) > 23 or int(zone_minutes) > 59:
            raise ValueError("the zone offset is not a valid hh:mm")
        offset = timedelta(hours=int(zone_hours), minutes=int(zone_minutes))
        zone = timezone(-offset if sign == "-" else offset)
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError as e:
        raise ValueError(f"not a valid date and time ({e})") from None
    return moment.timestamp() + (float(fraction) if fraction else 0.0)


def parse_duration(text: str) -> float:
    """
    Parse a step length: a number, decimals allowed, with an optional unit
    C{s}, C{m} or C{h} (C{90s}, C{5m}, C{1.5h}; C{90} is seconds), from one
    second to 366 days.

    @raise ValueError: with a short reason.
    """
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError("not a duration (a number with an optional unit s, m or h: 90s, 5m, 1.5h)")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not _MIN_STEP <= seconds <= _MAX_STEP:
        raise ValueError("must be from 1 second to 366 days")
    return seconds


@frozen
class RampPosition:
    """Where a ramp stands at a moment."""

    # Counted from 1; 0 before the start.  Stays at the last step after it ends.
    step: int
    steps: int
    percent: float
    # When the current step ends (or the first begins), seconds since the
    # epoch; None once the last step has ended.
    next_step_at: float | None


@frozen
class Ramp:
    """
    C{percents[i]} is the ramping colour's share during step C{i + 1},
    which begins at C{start + i * step} and ends when the next begins.
    """

    percents: tuple[float, ...]
    start: float
    step: float

    def boundary(self, index: int) -> float:
        """When step C{index + 1} begins (the last step ends at C{boundary(len(percents))})."""
        return self.start + index * self.step

    def position(self, now: float) -> RampPosition:
        """The step, its percentage, and when the next step begins, at time C{now}."""
        steps = len(self.percents)
        if now < self.start:
            return RampPosition(0, steps, 0.0, self.start)
        index = int((now - self.start) // self.step)
        # The division rounds; the boundaries as computed here are the
        # truth, so that a step begins exactly when boundary() says.
        while index > 0 and self.boundary(index) > now:
            index -= 1
        while self.boundary(index + 1) <= now:
            index += 1
        if index >= steps:
            return RampPosition(steps, steps, self.percents[-1], None)
        return RampPosition(index + 1, steps, self.percents[index], self.boundary(index + 1))


def ramp_weights(weights: Mapping[str, int], ramping: str, percent: float) -> dict[str, int]:
    """
    Integer weights that give C{ramping} C{percent} % of the traffic and
    share the rest among the other colours in proportion to C{weights}
    (C{ramping}'s own entry is ignored).

    Every other colour's weight is scaled by the same factor, so the
    sticky hash moves users only between C{ramping} and the rest, never
    among the rest.  With no other weight above 0 (the configuration
    refuses that, so only once the others are rolled back), C{ramping} has
    it all (any percentage above 0) or none.
    """
    scaled = round(percent * PERCENT_SCALE)
    others = sum(weight for color, weight in weights.items() if color != ramping)
    if others == 0:
        return {color: scaled if color == ramping else 0 for color in weights}
    rest = _HUNDRED - scaled
    return {
        color: scaled * others if color == ramping else rest * weight
        for color, weight in weights.items()
    }
