"""
HTTP/2 to clients: twisted.web's HTTP/2 connection, made to behave as the
proxy's HTTP/1.1 channel does towards the rest of sillyproxy.

twisted.web's HTTP/2 support lives in a private module, so this module is
part of the fence around Twisted's internals (checked against Twisted 25.5.0
to 26.10.0, pinned by C{tests/test_compat.py}).  It relies on:
  - C{twisted.web._http2.H2Connection}: its C{_requestDataReceived(event)}
    and C{_requestEnded(event)}, which look the stream up by id, and
    C{timeoutConnection}; its C{site}, C{factory},
    C{requestFactory} and C{timeOut} attributes (set before
    C{makeConnection}, as twisted.web's protocol switch does), its
    C{streams} (stream id -> stream), and its h2 C{conn} with
    C{close_connection()} and C{data_to_send()} for GOAWAY, and its
    C{_requestDone(streamID)}, called once a stream's response is sent;
  - C{twisted.web._http2.H2Stream}: C{receiveDataChunk(data,
    flowControlledLength)} and C{requestComplete()}, which the connection
    calls as the body arrives, and C{_conn.openStreamWindow}; its
    C{__init__} sets C{streamID},
    C{site} and C{_conn} and then calls C{requestFactory(stream,
    queued=False)}, before it reads the request headers; its C{command} and
    C{path}; its C{_request}.
Each stream is given the class L{ProxyH2Stream} when its request is made,
so that L{sillyproxy._site.ProxyRequest} finds on it what it finds on a
L{sillyproxy._site.ProxyChannel}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from hyperframe.frame import GoAwayFrame
from twisted.web._http2 import H2Connection, H2Stream

from ._accesslog import AccessRecord

if TYPE_CHECKING:
    from ._site import ProxyRequest, ProxySite

__all__ = ["ProxyH2Connection", "ProxyH2Stream"]


class ProxyH2Stream(H2Stream):
    """One HTTP/2 request, as the proxy's request and resource see a channel."""

    rejected = False
    # HTTP/2 has no Upgrade; a stream is never a tunnel.
    tunnel = None

    def receiveDataChunk(self, data: bytes, flowControlledLength: int) -> None:
        if self.rejected:
            # Answered already (413): drop the rest of the body, but give
            # its window back, or the connection's would run dry.
            self._conn.openStreamWindow(self.streamID, flowControlledLength)
            return
        super().receiveDataChunk(data, flowControlledLength)

    def requestComplete(self) -> None:
        if not self.rejected:
            super().requestComplete()

    def abort(self) -> None:
        """Abort this stream alone (RST_STREAM); the connection stays."""
        self.abortConnection()

    def connection_transport(self) -> None:
        # Many streams share the TCP connection: its kernel counters say
        # nothing of one stream (HTTP/2 flow control pauses it instead).
        return None

    def reject(self, status: int, reason: bytes, message: str) -> None:
        """Answer this stream with an error, once its request exists; the connection stays."""
        if self.rejected:
            return
        self.rejected = True
        body = message.encode("utf-8") + b"\n"
        self.site.reactor.callLater(0, self._answer, status, body, message)

    def _answer(self, status: int, body: bytes, message: str) -> None:
        request = self._request
        if request.finished or request.channel is None:
            return
        request.setResponseCode(status)
        request.responseHeaders.setRawHeaders(b"content-type", [b"text/plain; charset=utf-8"])
        request.responseHeaders.setRawHeaders(b"content-length", [b"%d" % len(body)])
        request.write(body)
        request.finish()
        self.site.refused(self, status, message, len(body))

    def refused_record(self, status: int, message: str, body_bytes: int, now: float) -> AccessRecord:
        """The access record of a request refused on this stream."""
        request = self._request

        def header(name: bytes) -> str:
            values = request.requestHeaders.getRawHeaders(name)
            return values[0].decode("ascii", "backslashreplace") if values else "-"

        return AccessRecord(
            time=now,
            client=getattr(self.getPeer(), "host", "-"),
            method=self.command or b"-",
            target=self.path or b"-",
            color="-",
            status=status,
            body_bytes=body_bytes,
            duration=0.0,
            outcome=message,
            host=header(b"host"),
            user_agent=header(b"user-agent"),
        )


def _stream_request(make_request: Callable[..., ProxyRequest]) -> Callable[..., ProxyRequest]:
    def request_for(stream: H2Stream, queued: bool = False) -> ProxyRequest:
        stream.__class__ = ProxyH2Stream
        return make_request(stream, queued=False)

    return request_for


class ProxyH2Connection(H2Connection):
    """
    An HTTP/2 connection the site tracks and drains as it does its HTTP/1.1
    channels: on drain it sends GOAWAY and lets open streams finish.
    """

    # Timeouts the site's sweep enforces on HTTP/1.1 channels; HTTP/2 has
    # its own idle timeout (twisted.web's, from the site's idle timeout).
    header_started = None
    idle_since = None
    body_since = None
    _goaway_sent = False

    def __init__(self, site: ProxySite) -> None:
        super().__init__(reactor=site.reactor)
        self.proxy_site = site
        self.site = site  # type: ignore[assignment]
        self.factory = site  # type: ignore[assignment]
        self.requestFactory = _stream_request(site.requestFactory)
        idle = site.idle_timeout
        self.timeOut = idle or None  # type: ignore[assignment]
        # The idle timeout runs on the site's clock.
        self.callLater = site.reactor.callLater  # type: ignore[method-assign, assignment]

    def connectionMade(self) -> None:
        self.proxy_site.channel_opened(self)  # type: ignore[arg-type]
        super().connectionMade()

    def timeoutConnection(self) -> None:
        # The idle timeout is for a connection with nothing to do, as on
        # HTTP/1.1: a stream waiting for a slow backend is not idleness.
        if self.streams:
            self.resetTimeout()
            return
        super().timeoutConnection()

    def _requestDataReceived(self, event: Any) -> None:
        # A stream already answered (a 413 sent while the body was still
        # coming) is gone from self.streams; the rest of its body is dropped.
        if event.stream_id in self.streams:
            super()._requestDataReceived(event)
            return
        # Still give the connection's window back, or the client's other
        # streams would stall (h2 skips the closed stream's own window).
        self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        if self.transport is not None:
            self.transport.write(self.conn.data_to_send())

    def _requestEnded(self, event: Any) -> None:
        if event.stream_id in self.streams:
            super()._requestEnded(event)

    def connectionLost(self, reason: Failure = connectionDone, _cancelTimeouts: bool = True) -> None:
        super().connectionLost(reason, _cancelTimeouts)
        self.proxy_site.channel_closed(self)  # type: ignore[arg-type]

    @property
    def busy(self) -> bool:
        """Whether a stream is open."""
        return bool(self.streams)

    @property
    def requests(self) -> list[Any]:
        return [stream._request for stream in self.streams.values()]

    @property
    def persistent(self) -> bool:
        return not self._goaway_sent

    @persistent.setter
    def persistent(self, value: bool) -> None:
        if not value:
            self.goaway()

    def goaway(self) -> None:
        """Tell the client to open no more streams here; those open may finish."""
        if self._goaway_sent or self.transport is None:
            return
        self._goaway_sent = True
        if not self.streams:
            self._close()
            return
        # The frame is written here, not by the h2 library: its
        # close_connection() would refuse to send anything more, the open
        # streams' answers included (python-hyper/h2 issue 1181).
        self.transport.write(self.conn.data_to_send())
        self.transport.write(
            GoAwayFrame(0, last_stream_id=self.conn.highest_inbound_stream_id, error_code=0).serialize()
        )

    def _close(self) -> None:
        """GOAWAY and close, now that no stream is open."""
        if self.transport is None:
            return
        self.conn.close_connection()
        self.transport.write(self.conn.data_to_send())
        self.transport.loseConnection()

    def loseConnection(self) -> None:
        self.goaway()

    def _requestDone(self, streamID: int) -> None:
        super()._requestDone(streamID)
        if self._goaway_sent and not self.streams:
            self._close()
