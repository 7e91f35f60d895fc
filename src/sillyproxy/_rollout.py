"""
The weights the router uses at each moment: the configured ones, the ramping
colour's step, and the colours rolled back.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from ._config import Backend
from ._ramp import RampPosition, ramp_weights
from ._routing import Router
from ._timestamps import rfc3339

__all__ = ["Rollout", "describe_split"]

_log = Logger(namespace="sillyproxy.rollout")


def describe_split(weights: dict[str, int]) -> str:
    """C{blue 95%, green 5%}: each colour's share of new traffic for these weights."""
    total = sum(weights.values())
    if not total:
        return "no colour gets traffic"
    return ", ".join(f"{color} {100 * weight / total:.4g}%" for color, weight in weights.items())


class Rollout:
    """
    Keeps the router's weights in step with the ramp and the rollbacks:
    it sets them at once, then again at each step boundary (a timer), and
    whenever a colour is rolled back.

    @param backends: the served colours; at most one has a ramp.
    """

    def __init__(self, backends: Sequence[Backend], router: Router, clock: IReactorTime) -> None:
        self._backends = tuple(backends)
        self._router = router
        self._clock = clock
        self._configured = {b.color: b.weight for b in backends}
        ramping = [b for b in backends if b.ramp is not None]
        self._ramping = ramping[0] if ramping else None
        # Colour -> why it was rolled back.
        self.rolled_back: dict[str, str] = {}
        # Colours whose rollback was refused, so that it is logged once.
        self._refused: set[str] = set()
        self._timer: IDelayedCall | None = None
        self._router.set_weights(self.weights(clock.seconds()))

    def ramp_position(self, color: str, now: float) -> RampPosition | None:
        """Where C{color}'s ramp stands, or None if it does not ramp."""
        backend = self._ramping
        if backend is None or backend.color != color:
            return None
        assert backend.ramp is not None
        return backend.ramp.position(now)

    def configured_weights(self, now: float) -> dict[str, int]:
        """The weights the configuration gives now (ramp included), before rollbacks."""
        return self._weights_without((), now)

    def weights(self, now: float) -> dict[str, int]:
        """The weights new requests are routed by now: a rolled-back colour's is 0."""
        return self._weights_without(self.rolled_back, now)

    def _weights_without(self, excluded: Collection[str], now: float) -> dict[str, int]:
        """The ramp's weights at C{now}, with the C{excluded} colours at 0."""
        weights = {c: 0 if c in excluded else w for c, w in self._configured.items()}
        backend = self._ramping
        if backend is None or backend.ramp is None or backend.color in excluded:
            return weights
        return ramp_weights(weights, backend.color, backend.ramp.position(now).percent)

    def start(self) -> None:
        """Log the ramp's position, and follow it from now on."""
        self._step()

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _step(self) -> None:
        """Set the weights for now, log them, and come back at the next step boundary."""
        self._timer = None
        now = self._clock.seconds()
        weights = self.weights(now)
        self._router.set_weights(weights)
        backend = self._ramping
        if backend is None or backend.ramp is None:
            return
        position = backend.ramp.position(now)
        color = backend.color
        split = describe_split(weights)
        if color in self.rolled_back:
            return
        if position.step == 0:
            _log.info(
                "{color} ramp: {steps} steps begin at {start}; until then {split}",
                color=color,
                steps=position.steps,
                start=rfc3339(backend.ramp.start),
                split=split,
            )
        elif position.next_step_at is None:
            _log.info(
                "{color} ramp complete at {percent:g}%: {split}",
                color=color,
                percent=position.percent,
                split=split,
            )
        else:
            _log.info(
                "{color} ramp step {step} of {steps} ({percent:g}%) until {until}: {split}",
                color=color,
                step=position.step,
                steps=position.steps,
                percent=position.percent,
                until=rfc3339(position.next_step_at),
                split=split,
            )
        if position.next_step_at is not None:
            # A timer can fire a hair early; _step then finds the same step
            # and sets another for the rest.
            self._timer = self._clock.callLater(
                max(0.0, position.next_step_at - now), self._step
            )

    def roll_back(self, color: str, reason: str) -> bool:
        """
        Give C{color} no new traffic until the process restarts (sticky
        users included; overrides still reach it).  Refused, and False,
        when no other colour would be left with a share: rolling back the
        last colour standing would turn every request into an error.
        """
        if color in self.rolled_back:
            return False
        now = self._clock.seconds()
        self.rolled_back[color] = reason
        weights = self.weights(now)
        if not any(weights.values()):
            del self.rolled_back[color]
            if color not in self._refused:
                self._refused.add(color)
                _log.warn(
                    "{color} not rolled back ({reason}): no other colour would get traffic",
                    color=color,
                    reason=reason,
                )
            return False
        self._router.set_weights(weights)
        _log.warn(
            "{color} rolled back: {reason}; new split: {split}",
            color=color,
            reason=reason,
            split=describe_split(weights),
        )
        return True
