"""Choose the colour for a request by weight, passing over colours that cannot serve."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from twisted.web.iweb import IAgent

from ._config import Backend
from ._selection import WeightedChooser

__all__ = ["Router"]


class Router:
    """
    The colours, their weights, and what sends each colour's requests.

    A colour whose agent says it is not C{available} (every address ejected
    or failing its health checks) is passed over, and its share goes to the
    other colours in proportion to their weights.

    @param agents: for each colour, the agent that sends its requests; one
        with an C{available} attribute can be taken out of rotation.
    @param randbelow: a uniform integer in C{[0, n)}; seed it in tests.
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        agents: Mapping[str, IAgent],
        randbelow: Callable[[int], int],
    ) -> None:
        self.backends = tuple(backends)
        self.agents = agents
        self._randbelow = randbelow
        self._chooser = WeightedChooser(self.backends, randbelow)

    @property
    def configured(self) -> bool:
        """Whether any colour has a weight above 0."""
        return self._chooser.total > 0

    def available(self, backend: Backend) -> bool:
        return getattr(self.agents[backend.color], "available", True)

    def effective_weights(self) -> dict[str, int]:
        """Each colour's weight after health: 0 for a colour that cannot serve."""
        return {b.color: b.weight if self.available(b) else 0 for b in self.backends}

    def choose(self, exclude: Collection[str] = ()) -> Backend | None:
        """
        A colour for the next request, or None when none can serve.  The
        common case is one weighted draw; only when it lands on a colour that
        is out (or excluded, as on a retry) are the others weighed again.
        """
        if not exclude:
            chosen = self._chooser.choose()
            if chosen is None or self.available(chosen):
                return chosen
        candidates = [
            b for b in self.backends if b.color not in exclude and self.available(b)
        ]
        return WeightedChooser(candidates, self._randbelow).choose()
