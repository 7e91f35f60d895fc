"""
A backend response head read in one pass is read exactly as Twisted's
line-by-line parser reads it, and whatever that parser treats specially is
left to it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web._newclient import HTTP11ClientProtocol, HTTPClientParser
from twisted.web._newclient import Request as ClientRequest
from twisted.web.http_headers import Headers

from sillyproxy._pool import _ClientProtocol
from sillyproxy._response_head import read_whole_head

from .support import BodyCollector, TableTests, rows


def exchange(method: bytes, response: bytes, twisted_reads: bool) -> dict[str, Any]:
    """
    Send a request over L{_ClientProtocol} and give it C{response} in one
    read, to its own C{dataReceived} (where the one-pass reading may apply)
    or to Twisted's, which reads line by line.
    """
    quiescent: list[object] = []
    protocol = _ClientProtocol(quiescent.append)
    transport = StringTransport()
    protocol.makeConnection(transport)
    request = ClientRequest._construct(method, b"/", Headers({b"host": [b"h"]}), None, True)
    answers: list[object] = []
    protocol.request(request).addBoth(answers.append)
    body = BodyCollector()
    if twisted_reads:
        HTTP11ClientProtocol.dataReceived(protocol, response)
    else:
        protocol.dataReceived(response)
    outcome: dict[str, Any] = {
        "state": protocol.state,
        "quiescent": len(quiescent),
        "closed": transport.disconnecting or transport.disconnected,
    }
    if not answers:
        outcome["answer"] = None
        return outcome
    [answer] = answers
    if isinstance(answer, Failure):
        outcome["answer"] = type(answer.value).__name__
        answer.trap(Exception)
        return outcome
    answer.deliverBody(body)  # type: ignore[attr-defined]
    outcome.update(
        answer=(answer.version, answer.code, answer.phrase, answer.length),  # type: ignore[attr-defined]
        headers=sorted(answer.headers.getAllRawHeaders()),  # type: ignore[attr-defined]
        body=body.data,
        ended=body.ended,
        state=protocol.state,
        quiescent=len(quiescent),
        closed=transport.disconnecting or transport.disconnected,
    )
    return outcome


def waiting_parser() -> HTTPClientParser:
    """The parser of a GET just sent over L{_ClientProtocol}, waiting for the response."""
    protocol = _ClientProtocol()
    protocol.makeConnection(StringTransport())
    protocol.request(ClientRequest._construct(b"GET", b"/", Headers({b"host": [b"h"]}), None, True))
    parser = protocol._parser
    assert parser is not None
    return parser


_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\nblue ok\n"


class ReadInOnePassTests(TableTests):
    @rows(
        ("small body", b"GET", _OK),
        ("no headers, no length", b"GET", b"HTTP/1.1 200 OK\r\n\r\nrest of it"),
        ("repeated headers kept apart", b"GET",
         b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 0\r\n\r\n"),
        ("spaces around values trimmed", b"GET", b"HTTP/1.1 200 OK\r\nX-A:   v  \r\nContent-Length: 0\r\n\r\n"),
        ("empty value", b"GET", b"HTTP/1.1 200 OK\r\nX-A:\r\nContent-Length: 0\r\n\r\n"),
        ("no reason phrase", b"GET", b"HTTP/1.1 204\r\n\r\n"),
        ("204 then bytes", b"GET", b"HTTP/1.1 204 No Content\r\n\r\nextra"),
        ("content-length 0 then bytes", b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nextra"),
        ("HEAD keeps its length", b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
        ("chunked", b"GET",
         b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        ("body longer than its length", b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabcdef"),
        ("connection close", b"GET", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx"),
        ("connection names a header", b"GET",
         b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: s\r\nContent-Length: 0\r\n\r\n"),
        ("informational first", b"GET", b"HTTP/1.1 100 Continue\r\nX-Early: 1\r\n\r\n" + _OK),
        ("HTTP/1.0", b"GET", b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx"),
        ("names spelt oddly", b"GET",
         b"HTTP/1.1 200 OK\r\netag: e\r\nWWW-authenticate: w\r\nx-FOO: 1\r\nX-Foo: 2\r\nContent-Length: 0\r\n\r\n"),
        ("connection headers kept apart", b"GET",
         b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\n"
         b"Proxy-Connection: keep-alive\r\nTrailer: X-T\r\nContent-Length: 0\r\n\r\n"),
        ("name not a token", b"GET", b"HTTP/1.1 200 OK\r\nX Bad: v\r\nContent-Length: 0\r\n\r\n"),
        ("empty name", b"GET", b"HTTP/1.1 200 OK\r\n: v\r\nContent-Length: 0\r\n\r\n"),
        ("NUL in a value", b"GET", b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n"),
        ("header without a colon", b"GET", b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n"),
        ("status not a number", b"GET", b"HTTP/1.1 abc OK\r\n\r\n"),
        ("status line of one word", b"GET", b"HTTP/1.1\r\n\r\n"),
        ("bad version", b"GET", b"HTTP/x 200 OK\r\n\r\n"),
        ("conflicting lengths", b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx"),
        ("unknown transfer coding", b"GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nx"),
        ("obsolete line fold", b"GET", b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
        ("bare LF", b"GET", b"HTTP/1.1 200 OK\nX-A: a\r\nContent-Length: 0\r\n\r\n"),
        ("bare CR in a value", b"GET", b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n"),
        ("head not finished", b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"),
        ("blank head", b"GET", b"\r\n\r\n"),
    )
    def test_same_as_line_by_line(self, _: str, method: bytes, response: bytes) -> None:
        """
        If a response arrives whole, then the request gets the same answer,
        headers, body and ending, and the connection the same fate, as when
        Twisted reads the same bytes line by line.
        """
        self.assertEqual(exchange(method, response, False), exchange(method, response, True))

    def test_whole_head_read_in_one_pass(self) -> None:
        """If a plain head arrives whole, then it is read in one pass (the parser's line buffer is never used)."""
        parser = waiting_parser()
        self.assertTrue(read_whole_head(parser, _OK))
        self.assertEqual(parser.response.code, 200)
        self.assertEqual(parser.response.length, 8)

    @rows(
        ("split head", b"HTTP/1.1 200 OK\r\nContent-Le"),
        ("bare LF", b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"),
        ("obsolete line fold", b"HTTP/1.1 200 OK\r\nX-A: a\r\n\tb\r\n\r\n"),
        ("longer than a line may be", b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * 16384 + b"\r\n\r\n"),
    )
    def test_left_to_the_line_parser(self, _: str, response: bytes) -> None:
        """If the head is not whole or not plain, then nothing is read in one pass."""
        parser = waiting_parser()
        self.assertFalse(read_whole_head(parser, response))
        self.assertEqual(parser.state, "STATUS")
        self.assertFalse(hasattr(parser, "response"))
