"""
The WebSocket echo behind myapp's /ws: each message comes back prefixed with
the colour the socket arrived with, so the demo shows which version a socket
landed on.

It runs on Twisted's own L{twisted.web.websocket} (wsproto underneath), with
two additions:

  - Messages are reassembled here, as Twisted only does so itself from 26.10:
    25.5.0 and 26.4.0 pass on each chunk wsproto yields, i.e. a piece of a
    frame as it comes off the network, so a large message would be echoed in
    pieces.  Nothing public says where a message ends, so the wsproto
    connection inside Twisted's wire protocol is wrapped (see L{_WholeMessages}).
  - Neither wsproto nor Twisted bounds a message's size: a message over
    C{max_message} closes the socket with 1009 (message too big), and reading
    from a client stops while echoes to it are stuck in the send buffer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable, Union

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.server import Request
from twisted.web.websocket import WebSocketResource, WebSocketTransport
from wsproto.events import BytesMessage, Event, TextMessage

__all__ = ["MAX_MESSAGE", "MESSAGE_TOO_BIG", "color_of", "echo_resource"]

#: The largest message, in bytes (binary) or characters (text), echoed.
MAX_MESSAGE = 4 * 1024 * 1024
#: The close code for a message over the limit (RFC 6455 section 7.4.1).
MESSAGE_TOO_BIG = 1009

_log = Logger()


def color_of(request: IRequest) -> tuple[str, bytes]:
    """
    The colour the proxy gave C{request} (its C{Color} header), as text and as
    the header's bytes; C{"unknown"} without one.
    """
    raw = request.getHeader(b"color")
    if not raw:
        return "unknown", b"unknown"
    return raw.decode("utf-8", "replace"), raw


class _WholeMessages:
    """
    Stands in for the wsproto connection of Twisted's websocket wire protocol,
    so that its C{events()} yields each message whole, as one event, and a
    message over the limit is dropped while C{too_big} is called.  Everything
    else passes through to the wrapped connection.
    """

    def __init__(self, connection: Any, limit: int, too_big: Callable[[], None]) -> None:
        self._connection = connection
        self._limit = limit
        self._too_big = too_big
        self._parts: list[Any] = []
        self._size = 0
        self._refused = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def events(self) -> Iterator[Event]:
        for event in self._connection.events():
            if not isinstance(event, (TextMessage, BytesMessage)):
                yield event
                continue
            if self._refused:
                continue
            self._parts.append(event.data)
            self._size += len(event.data)
            if self._size > self._limit:
                self._refused = True
                self._parts = []
                self._too_big()
                continue
            if not event.message_finished:
                continue
            parts, self._parts, self._size = self._parts, [], 0
            if isinstance(event, TextMessage):
                yield TextMessage(data="".join(parts))
            else:
                yield BytesMessage(data=b"".join(parts))


class _Echo:
    """One socket's echo: a L{twisted.web.websocket.WebSocketProtocol}."""

    transport: WebSocketTransport

    def __init__(self, color: str, raw_color: bytes, max_message: int) -> None:
        self._text_prefix = color + ": "
        self._bytes_prefix = raw_color + b": "
        self._max_message = max_message

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self.transport = transport
        connection = getattr(transport, "_wsconn", None)
        if connection is None:
            # A Twisted that no longer has it reassembles messages itself
            # (26.10 does), and _check still bounds them.
            return
        transport._wsconn = _WholeMessages(  # type: ignore[attr-defined]
            connection, self._max_message, self._refuse
        )

    def negotiationFinished(self) -> None:
        pass

    def pongReceived(self, payload: bytes) -> None:
        pass

    def textMessageReceived(self, message: str) -> None:
        if self._check(message):
            self.transport.sendTextMessage(self._text_prefix + message)

    def bytesMessageReceived(self, data: Union[bytes, bytearray]) -> None:
        if self._check(data):
            self.transport.sendBytesMessage(self._bytes_prefix + data)

    def connectionLost(self, reason: Failure) -> None:
        pass

    def _check(self, message: Union[str, bytes, bytearray]) -> bool:
        if len(message) <= self._max_message:
            return True
        self._refuse()
        return False

    def _refuse(self) -> None:
        _log.info("/ws: a message over {limit} closed the socket", limit=self._max_message)
        self.transport.loseConnection(MESSAGE_TOO_BIG)


class _EchoFactory:
    """A L{twisted.web.websocket.WebSocketServerFactory} of L{_Echo}s."""

    def __init__(self, max_message: int) -> None:
        self._max_message = max_message

    def buildProtocol(self, request: Request) -> _Echo:
        # The channel, upgraded to a websocket, still stands between the
        # connection and its writes: what it hears of a full send buffer goes
        # to the request's producer.  The connection itself stops reading
        # from the client until its echoes drain.
        producer = IPushProducer(request.transport, None)
        if producer is not None:
            request.registerProducer(producer, True)
        return _Echo(*color_of(request), self._max_message)


def echo_resource(max_message: int = MAX_MESSAGE) -> WebSocketResource:
    """The resource that answers a WebSocket handshake with a colour echo."""
    return WebSocketResource(_EchoFactory(max_message))
