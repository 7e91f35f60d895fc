"""Choose the colour for a request by weight, passing over colours that cannot serve."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from twisted.internet.defer import Deferred
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, IResponse

from ._address import BackendAddress
from ._config import Backend
from ._selection import WeightedChooser
from ._sticky import Ranker
from ._tunnel import Switched

if TYPE_CHECKING:
    from ._pool import UpgradeClientProtocol

__all__ = ["Router", "Upstream"]


class Upstream(Protocol):
    """
    What sends one colour's requests: in production a L{ResolvingUpstream}
    balancing over the addresses the backend's host name resolves to.
    """

    @property
    def available(self) -> bool:
        """Whether a request sent now could be served (False: the colour is out of rotation)."""

    @property
    def addresses(self) -> Sequence[BackendAddress]:
        """The backend's addresses, with their health, for retries, /status and /metrics."""

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
        sent_to: Callable[[str], None] | None = None,
    ) -> Deferred[IResponse]:
        """Send a request, as L{IAgent.request} does; C{sent_to} is told the C{address:port} chosen."""

    def upgrade(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers,
        sent_to: Callable[[str], None] | None = None,
    ) -> Deferred[IResponse | tuple[Switched, UpgradeClientProtocol]]:
        """Send a request that asks to switch protocols: its response, or the backend's 101 and connection."""

    def start(self) -> None:
        """Begin resolving and health checking."""

    def stop(self) -> Deferred[None]:
        """Stop, and close idle connections."""


class Router:
    """
    The colours, their weights, and the upstream that sends each colour's
    requests.

    A colour whose upstream says it is not C{available} (every address
    ejected or failing its health checks, or a host name that does not
    resolve) is passed over, and its share goes to the other colours in
    proportion to their weights.

    @param randbelow: a uniform integer in C{[0, n)}; seed it in tests.
    @param sticky_secret: keys the hash that gives a sticky key its colour
        (C{SILLYPROXY_STICKY_SECRET}); empty for an unkeyed hash.
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        upstreams: Mapping[str, Upstream],
        randbelow: Callable[[int], int],
        sticky_secret: bytes = b"",
    ) -> None:
        self.backends = tuple(backends)
        self.upstreams = upstreams
        self._randbelow = randbelow
        self._sticky_secret = sticky_secret
        self._by_color = {b.color: b for b in self.backends}
        self.set_weights({b.color: b.weight for b in self.backends})

    @property
    def weights(self) -> Mapping[str, int]:
        """Each colour's weight now: configured, or as a ramp or a rollback set it."""
        return self._weights

    def set_weights(self, weights: Mapping[str, int]) -> None:
        """
        Route new requests by these weights (one per colour) from now on.
        A sticky key moves only if its colour's weight relative to the
        others changed (see L{Ranker}).
        """
        self._weights = {b.color: weights[b.color] for b in self.backends}
        self._chooser = WeightedChooser(
            self.backends, self._randbelow, [self._weights[b.color] for b in self.backends]
        )
        self._ranker = Ranker(list(self._weights.items()), self._sticky_secret)

    def backend(self, color: str) -> Backend | None:
        """The configured colour of that name, if there is one."""
        return self._by_color.get(color)

    def choose_for(self, key: bytes, exclude: Collection[str] = ()) -> Backend | None:
        """
        The colour for a sticky key: its best by rendezvous hashing over the
        current weights, or, when that one cannot serve (or is
        excluded), its next best, so that a failover is as stable as the
        first choice.  None when none can serve.
        """
        for color in self._ranker.rank(key):
            if color in exclude:
                continue
            backend = self._by_color[color]
            if self.available(backend):
                return backend
        return None

    @property
    def configured(self) -> bool:
        """Whether any colour has a weight above 0."""
        return self._chooser.total > 0

    def available(self, backend: Backend) -> bool:
        return self.upstreams[backend.color].available

    def effective_weights(self) -> dict[str, int]:
        """Each colour's weight after health: 0 for a colour that cannot serve."""
        weights = self._weights
        return {b.color: weights[b.color] if self.available(b) else 0 for b in self.backends}

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
        weights = self._weights
        return WeightedChooser(
            candidates, self._randbelow, [weights[b.color] for b in candidates]
        ).choose()
