"""
The private Twisted names sillyproxy relies on, other than the transports'
(L{sillyproxy._transport}), the connection pool's (L{sillyproxy._pool}),
the one-pass head readers' (L{sillyproxy._request_head},
L{sillyproxy._response_head}) and HTTP/2's (L{sillyproxy._http2}).

Each sits in one named function or class, whose docstring says what it assumes and
which Twisted releases it was checked against; C{tests/test_compat.py} pins
each assumption, so a Twisted release that breaks one fails that test by
name rather than corrupting traffic.  Checked against Twisted 25.5.0 to
26.10.0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache

from twisted.web._newclient import ParseError
from twisted.web.http import NO_BODY_CODES, HTTPChannel, _ChunkedTransferDecoder, toChunk
from twisted.web.http_headers import Headers
from twisted.web.server import Request

__all__ = [
    "HTTPChannelWithHooks",
    "RequestWithPlainFirstWrite",
    "ParseError",
    "clear_exit_signal",
    "copy_canonical_headers",
    "header_key",
    "header_key_of",
    "header_values",
    "set_header_values",
]


def copy_canonical_headers(headers: Headers, pairs: Iterable[tuple[bytes, list[bytes]]]) -> None:
    """
    Add C{pairs} to C{headers} without checking or converting them again.

    The names must already be in the canonical case Twisted keeps (as read
    from another L{Headers}) and the values free of line breaks (read from
    another L{Headers}, or made by L{sillyproxy._headers}).  setRawHeaders
    checks and converts every name and value, which is a noticeable share
    of a proxied request when every header passes through twice.

    Relies on C{Headers._rawHeaders}: a dict from the canonical name to a
    list of values.
    """
    headers._rawHeaders.update(pairs)


def header_key(name: bytes) -> bytes:
    """
    The name under which L{Headers} keeps header C{name}, as its public
    C{getAllRawHeaders} reports it (C{b"x-request-id"} -> C{b"X-Request-Id"}).
    Computed once, at import, for L{header_values} and L{set_header_values}.
    """
    headers = Headers()
    headers.addRawHeader(name, b"")
    [(key, _)] = headers.getAllRawHeaders()
    return key


@lru_cache(maxsize=1000)
def header_key_of(name: bytes) -> bytes:
    """
    L{header_key} for a name read off the wire, remembered (the thousand
    most recent), for the same few names arrive on every request.  Raises
    C{InvalidHeaderName}, as L{Headers} does, if C{name} is not a token.
    """
    return header_key(name)


def header_values(headers: Headers, key: bytes) -> list[bytes] | None:
    """
    C{headers.getRawHeaders(name)}, for the C{key} that L{header_key} made
    of C{name}, without encoding the name again: a dozen reads per request.

    Relies on C{Headers._rawHeaders}, as L{copy_canonical_headers} does.
    """
    return headers._rawHeaders.get(key) or None


def set_header_values(headers: Headers, key: bytes, values: list[bytes]) -> None:
    """
    C{headers.setRawHeaders(name, values)}, for the C{key} that
    L{header_key} made of C{name}, and values the proxy made itself (free
    of line breaks), so with nothing to check or convert.
    """
    headers._rawHeaders[key] = values


_CONTENT_LENGTH = header_key(b"content-length")
_TRANSFER_ENCODING = header_key(b"transfer-encoding")


def clear_exit_signal(reactor: object) -> bool:
    """
    Make twistd and twist exit 0 after a stop that a signal asked for;
    return whether there was one to clear.

    Both runners end by re-raising the signal that stopped the reactor
    (exit status 143 for SIGTERM), which reads as a crash to scripts and
    supervisors even when the proxy drained cleanly.

    Relies on the reactor's C{_exitSignal} attribute, which its signal
    handlers set and both runners read once the reactor has stopped.
    """
    if getattr(reactor, "_exitSignal", None) is None:
        return False
    reactor._exitSignal = None  # type: ignore[attr-defined]
    return True


class _ChunkSizeWatcher(_ChunkedTransferDecoder):
    """A chunked-body decoder that reports each chunk-size line as it is read."""

    def __init__(
        self,
        data: Callable[[bytes], None],
        finished: Callable[[bytes], None],
        chunk_size: Callable[[int], None],
    ) -> None:
        super().__init__(data, finished)
        self._chunk_size = chunk_size

    def _dataReceived_CHUNK_LENGTH(self) -> bool:
        read = super()._dataReceived_CHUNK_LENGTH()
        if read and self.length:
            self._chunk_size(self.length)
        return read


class HTTPChannelWithHooks(HTTPChannel):
    """
    twisted.web's HTTPChannel with public hooks where it has only private
    code paths.

    Relies on:
      - C{HTTPChannel._respondToBadRequestAndDisconnect()}, which every 400
        twisted.web itself decides goes through (a bad request line, header
        or chunk, a repeated Content-Length, too many headers);
      - C{HTTPChannel._transferDecoder}, set by the time C{allHeadersReceived}
        runs, and C{_ChunkedTransferDecoder(dataCallback, finishCallback)},
        its C{dataCallback}/C{finishCallback} attributes, and its
        C{_dataReceived_CHUNK_LENGTH()}, which returns True once it has read
        a chunk-size line into C{length}.
    """

    def bad_request(self) -> None:
        """twisted.web found the request malformed; by default, answer as it does."""
        super()._respondToBadRequestAndDisconnect()

    def chunk_size_received(self, size: int) -> None:
        """A chunked request body's chunk-size line declared C{size} (> 0) bytes to come."""

    def _respondToBadRequestAndDisconnect(self) -> None:
        self.bad_request()

    def allHeadersReceived(self) -> None:
        decoder = self._transferDecoder
        if type(decoder) is _ChunkedTransferDecoder:
            self._transferDecoder = _ChunkSizeWatcher(
                decoder.dataCallback, decoder.finishCallback, self.chunk_size_received
            )
        super().allHeadersReceived()


class RequestWithPlainFirstWrite(Request):
    """
    twisted.web's server Request, whose first write, for a response that
    asks nothing of it but a status line and the headers already set,
    does only what twisted.web's would: no default Content-Type (the
    response has none to add), no Last-Modified, ETag or Set-Cookie
    attributes to copy, no encoder, no faked HEAD, just the chunked
    decision, the head and the data.  Every other write is twisted.web's.

    Relies on C{Request._disconnected}, C{_inFakeHead} and C{_encoder},
    and on C{twisted.web.http.Request.write}'s first write (checked against
    Twisted 25.5.0 to 26.10.0, pinned by C{tests/test_compat.py}, compared
    by C{tests/test_first_write.py}).
    """

    def write(self, data: bytes) -> None:
        if (
            # A finished request has started writing.
            self.startedWriting
            or self._disconnected
            or self.defaultContentType is not None
            or self._inFakeHead
            or self._encoder is not None
            or self.lastModified is not None
            or self.etag is not None
            or self.cookies
        ):
            super().write(data)
            return
        self.startedWriting = 1
        code = self.code
        headers = self.responseHeaders
        method = self.method
        bodyless = method == b"HEAD" or code in NO_BODY_CODES
        if (
            self.clientproto == b"HTTP/1.1"
            and headers._rawHeaders.get(_CONTENT_LENGTH) is None
            and not bodyless
        ):
            headers._rawHeaders[_TRANSFER_ENCODING] = [b"chunked"]
            self.chunked = 1
        self.channel.writeHeaders(self.clientproto, b"%d" % code, self.code_message, headers)
        if bodyless:
            # As twisted.web does: nothing more of this response is written.
            self.write = _write_nothing  # type: ignore[method-assign]
            return
        self.sentLength += len(data)
        if data:
            if self.chunked:
                self.channel.writeSequence(toChunk(data))
            else:
                self.channel.write(data)


def _write_nothing(data: bytes) -> None:
    pass
