"""
Shadow traffic: a copy of a share of requests sent to one colour in the
background, with treq, its answer thrown away.

A copy goes through the colour's own upstream (its addresses, pools and
health), never waits on the client's response, and never holds the client's
response back: it starts after the request was routed and is forgotten by
the exchange at once.
"""

from __future__ import annotations

from collections.abc import Callable
from http.cookiejar import CookieJar, DefaultCookiePolicy
from io import BytesIO
from typing import IO, Any

from treq.client import HTTPClient
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import Cooperator
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IResponse
from zope.interface import implementer

from ._config import Backend
from ._routing import Upstream
from ._upload import ReceivedBodyProducer

__all__ = ["MAX_MIRRORED_BODY", "Mirror", "OUTCOMES"]

# Bodies larger than this are not copied: a copy is held in memory.
MAX_MIRRORED_BODY = 1024 * 1024
# The bodies of all copies in flight together, at most: past it, copies
# are dropped, so that memory stays bounded whatever the in-flight limit.
MAX_BUFFERED = 64 * MAX_MIRRORED_BODY
OUTCOMES = ("sent", "dropped", "too_large", "failed")
# One draw in a million: percentages keep four decimals.
_DRAW_RANGE = 1_000_000


class _NoCookies(DefaultCookiePolicy):
    """A cookie policy that stores nothing and sends nothing: a copy is the client's, not a session of ours."""

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Any, request: Any) -> bool:
        return False


@implementer(IAgent)
class _ExactRequestAgent:
    """
    The agent treq sends a copy through: it sends the client's method, target
    and headers exactly, through the colour's upstream.  treq's own layers
    would upper-case the method, re-encode the URL and add Accept-Encoding,
    and the copy is meant to be the client's request.  (treq still
    decompresses a gzip answer the client asked for before it is thrown
    away: CPU only, and only for clients that accept gzip.)
    """

    def __init__(self, upstream: Upstream, method: bytes, url: bytes, headers: Headers) -> None:
        self._upstream = upstream
        self._method = method
        self._url = url
        self._headers = headers

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> Deferred[IResponse]:
        return self._upstream.request(self._method, self._url, self._headers, bodyProducer)


class _Discard(Protocol):
    """Reads a copy's answer to its end, keeping nothing."""

    # What Response.deliverBody connects a body protocol to.
    transport: IPushProducer  # type: ignore[assignment]

    def __init__(self, done: Deferred[None]) -> None:
        self._done = done

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        # Any end counts: the answer came; a body cut short is the backend's
        # business, not the mirror's.
        self._done.callback(None)

    def abandon(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()


class Mirror:
    """
    Copies C{percent} % of the requests other colours serve to C{backend}.

    @param randbelow: a uniform integer in C{[0, n)}, for the draw.
    @param timeout: how long a copy may take, answer and body, before it is
        abandoned and counted as failed.
    @param max_buffered: the body bytes all copies in flight may hold together.
    """

    def __init__(
        self,
        backend: Backend,
        percent: float,
        upstream: Upstream,
        clock: IReactorTime,
        cooperator: Cooperator,
        randbelow: Callable[[int], int],
        max_inflight: int,
        timeout: float,
        max_buffered: int = MAX_BUFFERED,
    ) -> None:
        self.backend = backend
        self.color = backend.color
        self._threshold = round(percent * _DRAW_RANGE / 100)
        self._upstream = upstream
        self._clock = clock
        self._cooperator = cooperator
        self._randbelow = randbelow
        self._max_inflight = max_inflight
        self._max_buffered = max_buffered
        self._timeout = timeout
        self.inflight = 0
        # Body bytes held by the copies in flight.
        self.buffered = 0
        self.counts = dict.fromkeys(OUTCOMES, 0)

    def drawn(self) -> bool:
        """Whether the request at hand is one to copy."""
        return self._threshold > 0 and self._randbelow(_DRAW_RANGE) < self._threshold

    def copy(self, method: bytes, url: bytes, headers: Headers, body: IO[bytes] | None) -> None:
        """
        Send a copy of a request drawn for mirroring, unless too many are in
        flight or its body is over L{MAX_MIRRORED_BODY}.  C{body} is read
        here and left where it was found.
        """
        size = where = 0
        if body is not None:
            where = body.tell()
            size = body.seek(0, 2)
            body.seek(where)
            if size > MAX_MIRRORED_BODY:
                self.counts["too_large"] += 1
                return
        if self.inflight >= self._max_inflight or self.buffered + size > self._max_buffered:
            self.counts["dropped"] += 1
            return
        data = None
        if body is not None:
            body.seek(0)
            data = body.read(size)
            body.seek(where)
        self.inflight += 1
        self.buffered += size
        producer = (
            ReceivedBodyProducer(BytesIO(data), self._cooperator) if data is not None else None
        )
        client = HTTPClient(
            _ExactRequestAgent(self._upstream, method, url, headers),
            cookiejar=CookieJar(policy=_NoCookies()),  # type: ignore[arg-type]
        )
        discard: _Discard | None = None
        deadline: IDelayedCall | None = None

        def abandon() -> None:
            if discard is not None:
                discard.abandon()
            asked.cancel()

        def answered(response: IResponse) -> Deferred[None]:
            nonlocal discard
            done: Deferred[None] = Deferred()
            discard = _Discard(done)
            response.deliverBody(discard)
            return done

        def ended(result: object) -> None:
            if deadline is not None and deadline.active():
                deadline.cancel()
            self.inflight -= 1
            self.buffered -= size
            self.counts["failed" if isinstance(result, Failure) else "sent"] += 1

        try:
            asked: Deferred[Any] = client.request(
                method.decode("latin-1"),
                url,
                headers=headers,
                data=producer,
                allow_redirects=False,
                unbuffered=True,
                reactor=self._clock,  # type: ignore[arg-type]
            )
        except Exception:
            # treq refused the target (it parses the URL first): no copy.
            self.inflight -= 1
            self.buffered -= size
            self.counts["failed"] += 1
            return
        deadline = self._clock.callLater(self._timeout, abandon)
        asked.addCallback(answered).addBoth(ended)

