"""
A response's first write through L{RequestWithPlainFirstWrite} puts the
same bytes on the wire, and leaves the request in the same state, as
twisted.web's Request does, whatever the response asks of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.server import Request

from sillyproxy._compat import RequestWithPlainFirstWrite
from sillyproxy._site import ProxySite

from .support import TableTests, rows

_PEER = IPv4Address("TCP", "127.0.0.9", 40000)

Setup = Callable[[Request], None]


def _length(value: bytes) -> Setup:
    return lambda request: request.responseHeaders.setRawHeaders(b"content-length", [value])


def _both(*setups: Setup) -> Setup:
    def setup(request: Request) -> None:
        for each in setups:
            each(request)

    return setup


def respond(
    request_class: type[Request],
    version: bytes,
    method: bytes,
    code: int,
    setup: Setup,
    writes: list[bytes],
) -> dict[str, Any]:
    """Answer one request of C{request_class} with C{writes}, then finish it: what went out, and the request's state."""
    site = ProxySite(None, reactor=Clock())
    channel = site.buildProtocol(_PEER)
    assert channel is not None
    transport = StringTransport(peerAddress=_PEER)
    channel.makeConnection(transport)
    request = request_class(channel, False)
    channel.requests.append(request)
    request.method, request.uri, request.clientproto = method, b"/", version
    request.defaultContentType = None
    request.setResponseCode(code)
    request.responseHeaders.setRawHeaders(b"x-backend", [b"blue"])
    setup(request)
    errors = []
    for data in writes:
        try:
            request.write(data)
        except RuntimeError as e:
            errors.append(str(e))
    if not request.finished and not request._disconnected:
        request.finish()
    return {
        "wire": transport.value(),
        "state": (request.startedWriting, request.chunked, request.sentLength, request.finished),
        "headers": sorted(request.responseHeaders.getAllRawHeaders()),
        "errors": errors,
    }


class FirstWriteTests(TableTests):
    @rows(
        ("length known", b"HTTP/1.1", b"GET", 200, _length(b"5"), [b"hello"]),
        ("length known, several writes", b"HTTP/1.1", b"GET", 200, _length(b"6"), [b"abc", b"", b"def"]),
        ("length unknown: chunked", b"HTTP/1.1", b"GET", 200, lambda r: None, [b"abc", b"def"]),
        ("empty first write, chunked", b"HTTP/1.1", b"GET", 200, lambda r: None, [b"", b"x"]),
        ("no write at all", b"HTTP/1.1", b"GET", 200, lambda r: None, []),
        ("HTTP/1.0, length unknown", b"HTTP/1.0", b"GET", 200, lambda r: None, [b"abc"]),
        ("HEAD with a length", b"HTTP/1.1", b"HEAD", 200, _length(b"10"), [b"ignored"]),
        ("HEAD without a length", b"HTTP/1.1", b"HEAD", 200, lambda r: None, [b"a", b"b"]),
        ("204", b"HTTP/1.1", b"GET", 204, lambda r: None, [b"ignored"]),
        ("304 with a length", b"HTTP/1.1", b"GET", 304, _length(b"10"), [b"x"]),
        ("404 with a phrase of its own", b"HTTP/1.1", b"GET", 404, _length(b"1"), [b"x"]),
        ("default Content-Type", b"HTTP/1.1", b"GET", 200,
         lambda r: setattr(r, "defaultContentType", b"text/html"), [b"x"]),
        ("a cookie", b"HTTP/1.1", b"GET", 200, lambda r: r.addCookie(b"a", b"1"), [b"x"]),
        ("an ETag", b"HTTP/1.1", b"GET", 200, lambda r: r.setETag(b"e1"), [b"x"]),
        ("Last-Modified", b"HTTP/1.1", b"GET", 200, lambda r: r.setLastModified(1e9), [b"x"]),
        ("length and cookie", b"HTTP/1.1", b"GET", 200,
         _both(_length(b"1"), lambda r: r.addCookie(b"a", b"1")), [b"x"]),
        ("write after finish", b"HTTP/1.1", b"GET", 200,
         lambda r: (r.write(b"a"), r.finish()), [b"b"]),
        ("client gone", b"HTTP/1.1", b"GET", 200,
         lambda r: r.connectionLost(Exception("gone")), [b"x"]),
    )
    def test_same_as_twisted(
        self, _: str, version: bytes, method: bytes, code: int, setup: Setup, writes: list[bytes]
    ) -> None:
        """If a response is written, then the client gets the same bytes and the request ends in the same state as with twisted.web's Request."""
        self.assertEqual(
            respond(RequestWithPlainFirstWrite, version, method, code, setup, writes),
            respond(Request, version, method, code, setup, writes),
        )

    def test_head_then_body_in_one_go(self) -> None:
        """If the response's length is known, then its head and its first data go out together, unchunked."""
        outcome = respond(RequestWithPlainFirstWrite, b"HTTP/1.1", b"GET", 200, _length(b"5"), [b"hello"])
        self.assertEqual(
            outcome["wire"],
            b"HTTP/1.1 200 OK\r\nX-Backend: blue\r\nContent-Length: 5\r\n\r\nhello",
        )
