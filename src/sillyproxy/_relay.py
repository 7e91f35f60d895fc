"""Relay a backend's response body to the client, with backpressure and a stall check."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import PotentialDataLoss, ResponseDone
from zope.interface import implementer

from ._config import Backend
from ._outcome import Outcome
from ._sendprogress import bytes_acked
from ._site import ProxyRequest

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

    While the client holds the relay paused, the relay asks the kernel
    (C{delivered}, L{bytes_acked}) whether the client is taking any of the
    response; after C{send_timeout} without, it closes both connections
    (nginx's C{send_timeout}).

    @param on_backend_failed: told when the backend breaks off the body:
        L{Outcome.STALLED_MID_BODY} or L{Outcome.FAILED_MID_BODY}.
    @param on_client_stalled: told when the client stopped reading and both
        connections were closed.
    @param watching: the relays whose bodies are still arriving; the relay
        is in it from L{watch_for_stalls} until its body ends, and whoever
        holds it calls L{check_stalled} now and then.
    """

    # What Agent connects the relay to: the backend connection, as a
    # producer (not an ITransport, as Protocol declares).
    transport: IPushProducer  # type: ignore[assignment]

    def __init__(
        self,
        request: ProxyRequest,
        backend: Backend,
        on_backend_failed: Callable[[Outcome], None],
        watching: set[BodyRelay],
        idle_timeout: float,
        send_timeout: float = 60.0,
        on_client_stalled: Callable[[], None] = lambda: None,
        delivered: Callable[[object], int | None] | None = None,
    ) -> None:
        self._request = request
        self._backend = backend
        self._on_backend_failed = on_backend_failed
        self._watching = watching
        self._idle_timeout = idle_timeout
        self._send_timeout = send_timeout
        self._on_client_stalled = on_client_stalled
        self._delivered = delivered if delivered is not None else bytes_acked
        self._paused = False
        self._resumes = 0
        # What the client had taken when last seen to take more, and when.
        self._client_mark: tuple[int, int | None] | None = None
        self._client_progress_at = 0.0
        # Set once the relay itself closed the backend connection, whose
        # loss is then no failure of the backend's.
        self._stopped_by_us = False
        self._chunks = 0
        self._chunks_seen = 0
        self._progress_at = 0.0
        self._done = False

    def connectionMade(self) -> None:
        self._request.registerProducer(self, True)

    def watch_for_stalls(self, now: float) -> None:
        """Join the watched relays, unless the body already ended (the usual case for a small one)."""
        if not self._done:
            self._progress_at = now
            self._chunks_seen = self._chunks
            self._watching.add(self)

    def dataReceived(self, data: bytes) -> None:
        self._chunks += 1
        self._request.write(data)

    def pauseProducing(self) -> None:
        self._paused = True
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._paused = False
        self._resumes += 1
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        self.transport.stopProducing()

    def check_stalled(self, now: float) -> None:
        """
        Abort if the backend has sent nothing for the idle timeout while the
        client kept up, or the client has taken nothing for the send timeout.
        """
        if self._paused:
            self._chunks_seen = self._chunks
            self._progress_at = now
            self._check_client(now)
            return
        if self._chunks != self._chunks_seen:
            self._chunks_seen = self._chunks
            self._progress_at = now
            return
        if now - self._progress_at < self._idle_timeout:
            return
        _log.warn(
            "{color} backend sent nothing for {seconds}s mid-body; aborting",
            color=self._backend.color,
            seconds=self._idle_timeout,
        )
        self._on_backend_failed(Outcome.STALLED_MID_BODY)
        self._cut_off()

    def _check_client(self, now: float) -> None:
        channel = self._request.channel
        if channel is None:
            return
        mark = (self._resumes, self._delivered(channel.connection_transport()))
        if mark != self._client_mark:
            self._client_mark = mark
            self._client_progress_at = now
            return
        if now - self._client_progress_at < self._send_timeout:
            return
        _log.warn(
            "client {client} took nothing of a {color} response for {seconds}s; closing",
            client=getattr(channel.getPeer(), "host", "-"),
            color=self._backend.color,
            seconds=self._send_timeout,
        )
        self._on_client_stalled()
        self._cut_off()

    def _cut_off(self) -> None:
        """Close both connections; the backend's is not pooled, as the rest of its body would have to be read."""
        self._watching.discard(self)
        self._stopped_by_us = True
        self.transport.stopProducing()
        if self._request.channel is not None:
            self._request.channel.abort()

    def abandon(self) -> None:
        """The client left: close the backend connection rather than drain it."""
        self._watching.discard(self)
        if self.transport is not None:
            self.transport.stopProducing()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._done = True
        self._watching.discard(self)
        request = self._request
        if request.channel is None or self._stopped_by_us:
            # The client went first (its connectionLost already stopped us),
            # or the relay stopped the backend and aborted the client.
            return
        request.unregisterProducer()
        # isinstance, not reason.check: check walks the class names of the
        # exception's ancestry, for the end of every response.
        if isinstance(reason.value, (ResponseDone, PotentialDataLoss)):
            request.finish()
            return
        # A body cut short must not look complete: without the final chunk or
        # the promised length, the client knows the response is truncated.
        _log.warn(
            "{color} backend failed mid-body: {reason}",
            color=self._backend.color,
            reason=reason.getErrorMessage(),
        )
        self._on_backend_failed(Outcome.FAILED_MID_BODY)
        request.channel.abort()
