"""Relay a backend's response body to the client, with backpressure and a stall check."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import PotentialDataLoss, ResponseDone
from twisted.web.server import Request
from zope.interface import implementer

from ._config import Backend

__all__ = ["BodyRelay"]

_log = Logger(namespace="sillyproxy.forward")


@implementer(IPushProducer)
class BodyRelay(Protocol):
    """
    Copy a backend's response body to the client as it arrives.

    The relay is the client's registered producer and passes pauses on to
    the backend socket, so a slow client stops reads from the backend
    instead of filling memory; knowing when it is paused also tells a
    stalled backend (abort after C{idle_timeout}) from a slow client (wait).
    """

    def __init__(
        self,
        request: Request,
        backend: Backend,
        finished: Callable[[str], None],
        clock: IReactorTime,
        idle_timeout: float,
    ) -> None:
        self._request = request
        self._backend = backend
        self._finished = finished
        self._clock = clock
        self._idle_timeout = idle_timeout
        self._paused = False
        self._chunks = 0
        self._chunks_at_last_check = -1
        self._watch: IDelayedCall | None = None
        self._done = False

    def connectionMade(self) -> None:
        self._request.registerProducer(self, True)

    def watch_for_stalls(self) -> None:
        """Start the stall check, unless the body already ended (the usual case for a small one)."""
        if not self._done:
            self._watch = self._clock.callLater(self._idle_timeout, self._check_stalled)

    def dataReceived(self, data: bytes) -> None:
        self._chunks += 1
        self._request.write(data)

    def pauseProducing(self) -> None:
        self._paused = True
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._paused = False
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        self.transport.stopProducing()

    def _check_stalled(self) -> None:
        self._watch = None
        if self._paused or self._chunks != self._chunks_at_last_check:
            self._chunks_at_last_check = self._chunks
            self._watch = self._clock.callLater(self._idle_timeout, self._check_stalled)
            return
        _log.warn(
            "{color} backend sent nothing for {seconds}s mid-body; aborting",
            color=self._backend.color,
            seconds=self._idle_timeout,
        )
        self._finished("backend stalled mid-body")
        self.transport.stopProducing()
        if self._request.channel is not None:
            self._request.channel.transport.abortConnection()

    def abandon(self) -> None:
        """The client left: close the backend connection rather than drain it."""
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self.transport is not None:
            self.transport.stopProducing()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._done = True
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        request = self._request
        if request.channel is None:
            # The client went first; its connectionLost already stopped us.
            return
        request.unregisterProducer()
        if reason.check(ResponseDone, PotentialDataLoss):
            request.finish()
            return
        # A body cut short must not look complete: without the final chunk or
        # the promised length, the client knows the response is truncated.
        _log.warn(
            "{color} backend failed mid-body: {reason}",
            color=self._backend.color,
            reason=reason.getErrorMessage(),
        )
        self._finished("backend failed mid-body")
        request.channel.transport.abortConnection()
