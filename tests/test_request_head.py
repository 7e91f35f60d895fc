"""
A client's request head read in one pass is read exactly as twisted.web's
line-by-line channel reads it, and whatever that channel treats specially
(or refuses) is left to it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from sillyproxy import _site
from sillyproxy._accesslog import AccessRecord
from sillyproxy._request_head import whole_request_head
from sillyproxy._site import ProxySite

from .support import TableTests, rows

_PEER = IPv4Address("TCP", "127.0.0.9", 40000)


class _Recorder(Resource):
    """Records each request it is given; answers at once or when told."""

    isLeaf = True

    def __init__(self, answer_now: bool) -> None:
        super().__init__()
        self.answer_now = answer_now
        self.seen: list[tuple[Any, ...]] = []
        self.held: list[Request] = []

    def render(self, request: Request) -> bytes | int:
        self.seen.append(
            (
                request.method,
                request.uri,
                request.path,
                request.clientproto,
                list(request.requestHeaders.getAllRawHeaders()),
                request.content.read(),
            )
        )
        if self.answer_now:
            return b"ok"
        self.held.append(request)
        return NOT_DONE_YET


def serve(reads: list[bytes], answer_now: bool, one_pass: bool) -> dict[str, Any]:
    """
    Give a L{ProxySite}'s channel C{reads}, each as one read, then answer
    any request held; what the client got, what the resource saw, what was
    refused and how the connection ended.
    """
    resource = _Recorder(answer_now)
    refused: list[AccessRecord] = []
    site = ProxySite(resource, reactor=Clock(), on_refused=refused.append)
    channel = site.buildProtocol(_PEER)
    assert channel is not None
    transport = StringTransport(peerAddress=_PEER)
    channel.makeConnection(transport)
    may_read_whole_head = _site.may_read_whole_head
    if not one_pass:
        # twisted.web's reading only: no head may be read whole.
        _site.may_read_whole_head = lambda channel: False
    try:
        for data in reads:
            channel.dataReceived(data)
        while resource.held:
            request = resource.held.pop(0)
            request.write(b"later")
            request.finish()
    finally:
        _site.may_read_whole_head = may_read_whole_head
    return {
        "written": transport.value(),
        "seen": resource.seen,
        "refused": [(r.status, r.outcome, r.method, r.target, r.host) for r in refused],
        "persistent": channel.persistent,
        "closing": transport.disconnecting,
        "requests": len(channel.requests),
    }


_GET = b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\n\r\n"
_BROWSER = (
    b"GET /static/app.js?v=1 HTTP/1.1\r\nHost: shop.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: */*\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, br\r\n"
    b"Cookie: a=1; b=2\r\nSec-Fetch-Mode: no-cors\r\nConnection: keep-alive\r\n\r\n"
)


class ReadInOnePassTests(TableTests):
    @rows(
        ("plain GET", [_GET]),
        ("a browser's headers", [_BROWSER]),
        ("HTTP/1.0 without Host", [b"GET / HTTP/1.0\r\n\r\n"]),
        ("HTTP/1.0 keep-alive", [b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"]),
        ("Connection: close", [b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"]),
        ("close, then more", [b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + _GET]),
        ("repeated headers kept apart", [b"GET / HTTP/1.1\r\nHost: a\r\nAccept: x\r\naccept: y\r\n\r\n"]),
        ("names spelt oddly", [b"GET / HTTP/1.1\r\nhost: a\r\nx-FOO: 1\r\ndnt: 1\r\nte: trailers\r\netag: e\r\n\r\n"]),
        ("blanks around values", [b"GET / HTTP/1.1\r\nHost: a\r\nX-A: \t v w \t\r\nX-B:\r\nX-C:x\r\n\r\n"]),
        ("a colon in the value", [b"GET / HTTP/1.1\r\nHost: a:80\r\nX-A: b:c\r\n\r\n"]),
        ("absolute target", [b"GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n"]),
        ("asterisk target", [b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"]),
        ("unusual token method", [b"M-SEARCH /x HTTP/1.1\r\nHost: a\r\n\r\n"]),
        ("lower-case method", [b"get / HTTP/1.1\r\nHost: a\r\n\r\n"]),
        ("pipelined pair", [_GET + _BROWSER]),
        ("pipelined, second split", [_GET + _BROWSER[:30], _BROWSER[30:]]),
        ("head split across reads", [_GET[:20], _GET[20:]]),
        ("split inside the blank line", [_GET[:-2], _GET[-2:]]),
        ("head then part of the next", [_GET + b"GET /next HT"]),
        ("one byte at a time", [bytes([byte]) for byte in _GET]),
        ("empty line first (old browsers after a POST)", [b"\r\n" + _GET]),
        ("body by Content-Length", [b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"]),
        ("Content-Length: 0", [b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n" + _GET]),
        ("chunked body", [b"POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"]),
        ("Expect: 100-continue", [b"PUT /u HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n", b"hi"]),
        ("no Host on HTTP/1.1", [b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"]),
        ("two Hosts", [b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"]),
        ("Host with a comma", [b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n"]),
        ("Host not a host", [b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"]),
        ("obsolete line fold", [b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n"]),
        ("bare LF", [b"GET / HTTP/1.1\nHost: a\r\n\r\n"]),
        ("bare CR in a value", [b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n"]),
        ("NUL in a value", [b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n"]),
        ("header without a colon", [b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"]),
        ("empty header name", [b"GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n"]),
        ("space before the colon", [b"GET / HTTP/1.1\r\nHost: a\r\nX-A : v\r\n\r\n"]),
        ("space inside a name", [b"GET / HTTP/1.1\r\nHost: a\r\nX A: v\r\n\r\n"]),
        ("method not a token", [b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n"]),
        ("space inside the target", [b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"]),
        ("two spaces after the method", [b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"]),
        ("DEL in the target", [b"GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n"]),
        ("high byte in the target", [b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"]),
        ("HTTP/2.0 request line", [b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"]),
        ("HTTP/1.2", [b"GET / HTTP/1.2\r\nHost: a\r\n\r\n"]),
        ("lower-case version", [b"GET / http/1.1\r\nHost: a\r\n\r\n"]),
        ("request line only", [b"GET / HTTP/1.1\r\n\r\n"]),
        ("head at the size limit", [b"GET / HTTP/1.1\r\nHost: a\r\nX-A: " + b"a" * (16384 - 37) + b"\r\n\r\n"]),
        ("head past the size limit", [b"GET / HTTP/1.1\r\nHost: a\r\nX-A: " + b"a" * 16384 + b"\r\n\r\n"]),
        ("too many headers", [b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-A: 1\r\n" * 500 + b"\r\n"]),
        ("as many headers as allowed", [b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-A: 1\r\n" * 499 + b"\r\n"]),
        ("Transfer-Encoding gzip", [b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"]),
        ("garbage", [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"]),
    )
    def test_same_as_line_by_line(self, _: str, reads: list[bytes]) -> None:
        """
        If a client sends these bytes, then the resource sees the same
        requests, the client gets the same answers, the same refusals are
        logged and the connection ends the same way as when twisted.web
        reads them line by line, whether each request is answered at once
        or later.
        """
        for answer_now in (True, False):
            one_pass = serve(reads, answer_now, one_pass=True)
            line_by_line = serve(reads, answer_now, one_pass=False)
            self.assertEqual(one_pass, line_by_line, f"answer_now={answer_now}")

    def test_browser_head_read_in_one_pass(self) -> None:
        """If a browser's plain head arrives whole, then it is read in one pass, its names as Headers keeps them."""
        head = whole_request_head(_BROWSER, 16384, 500)
        assert head is not None
        self.assertEqual((head.method, head.target, head.version), (b"GET", b"/static/app.js?v=1", b"HTTP/1.1"))
        self.assertEqual(head.headers[0], (b"Host", b"shop.example.com"))
        self.assertEqual(len(head.headers), 8)
        self.assertEqual(head.end, len(_BROWSER))

    @rows(
        ("split head", b"GET / HTTP/1.1\r\nHost: a\r\n"),
        ("body", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx"),
        ("chunked", b"POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\n\r\n"),
        ("obsolete line fold", b"GET / HTTP/1.1\r\nHost: a\r\n\tb\r\n\r\n"),
        ("bare LF", b"GET / HTTP/1.1\nHost: a\r\n\r\n"),
        ("longer than allowed", b"GET / HTTP/1.1\r\nHost: " + b"a" * 16384 + b"\r\n\r\n"),
        ("more headers than allowed", b"GET / HTTP/1.1\r\n" + b"X-A: 1\r\n" * 501 + b"\r\n"),
        ("high byte in the target", b"GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n"),
    )
    def test_left_to_the_line_parser(self, _: str, data: bytes) -> None:
        """If the head is not whole, not plain or has a body, then it is not read in one pass."""
        self.assertIsNone(whole_request_head(data, 16384, 500))

    def test_one_pass_used_by_the_channel(self) -> None:
        """If a whole plain head arrives, then the channel's line reading is never used for it."""
        lines: list[bytes] = []
        resource = _Recorder(answer_now=True)
        site = ProxySite(resource, reactor=Clock())
        channel = site.buildProtocol(_PEER)
        assert channel is not None
        channel.makeConnection(StringTransport(peerAddress=_PEER))
        original = channel.lineReceived
        channel.lineReceived = lambda line: (lines.append(line), original(line))[1]  # type: ignore[method-assign]
        channel.dataReceived(_BROWSER)
        self.assertEqual(lines, [])
        self.assertEqual(len(resource.seen), 1)
        # And a head that is not plain still goes line by line.
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n")
        self.assertEqual(lines[0], b"GET / HTTP/1.1")
