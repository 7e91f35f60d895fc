"""
classify(): the status, one-line reason, metric label and retry safety of
each way a backend request fails, for failures built by hand and for the
failures Twisted's own HTTP/1.1 client produces from a backend's bytes.
"""

from __future__ import annotations

from twisted.internet import error
from twisted.internet.defer import CancelledError
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web._newclient import HTTP11ClientProtocol
from twisted.web._newclient import Request as ClientRequest
from twisted.web.client import RequestGenerationFailed, ResponseFailed, ResponseNeverReceived
from twisted.web.http_headers import Headers

from sillyproxy._compat import ParseError
from sillyproxy._failures import NoHealthyAddress, UpstreamFailure, classify

from .support import TableTests, rows

MALFORMED = UpstreamFailure(502, "backend sent a malformed response", "malformed")
CLOSED = UpstreamFailure(502, "backend closed the connection before responding", "reset")


def wrapped(kind: type[ResponseFailed], *causes: BaseException) -> ResponseFailed:
    """What Agent fails with: C{kind} whose reasons are C{causes}."""
    return kind([Failure(cause) for cause in causes])


def parsed(answer: bytes, close: bool = True) -> Failure:
    """
    Feed C{answer} to Twisted's HTTP/1.1 client protocol as the response to
    a GET (then close the connection, if C{close} and it is still open) and
    return how the request failed.
    """
    protocol = HTTP11ClientProtocol()
    transport = StringTransport()
    protocol.makeConnection(transport)
    request = ClientRequest._construct(b"GET", b"/", Headers({b"host": [b"h"]}), None)
    results: list[object] = []
    protocol.request(request).addBoth(results.append)
    if answer:
        protocol.dataReceived(answer)
    if close and not transport.disconnecting:
        protocol.connectionLost(Failure(error.ConnectionDone()))
    [result] = results
    assert isinstance(result, Failure), result
    return result


class ClassifyTests(TableTests):
    @rows(
        (NoHealthyAddress(), UpstreamFailure(503, "no healthy backends", "connect", maybe_sent=False)),
        (
            error.DNSLookupError("nope"),
            UpstreamFailure(502, "backend host name did not resolve", "connect", maybe_sent=False),
        ),
        (
            error.ConnectionRefusedError(),
            UpstreamFailure(502, "backend refused the connection", "connect", maybe_sent=False),
        ),
        (
            error.TimeoutError(),
            UpstreamFailure(
                504, "backend did not accept the connection in time", "timeout", maybe_sent=False
            ),
        ),
        (error.ConnectError("x"), UpstreamFailure(502, "backend unreachable", "connect", maybe_sent=False)),
        (wrapped(ResponseNeverReceived, error.ConnectionLost()), CLOSED),
        (wrapped(ResponseNeverReceived, error.ConnectionDone()), CLOSED),
        (wrapped(ResponseFailed, error.ConnectionLost()), CLOSED),
        (wrapped(ResponseFailed, error.ConnectionDone()), CLOSED),
        (wrapped(ResponseNeverReceived, CancelledError()), CLOSED),
        (wrapped(ResponseFailed, ParseError("wrong number of parts", b"HTTP/1.1")), MALFORMED),
        (wrapped(ResponseNeverReceived, ParseError("non-integer status code", b"x")), MALFORMED),
        (
            wrapped(ResponseFailed, ValueError("conflicting Content-Length headers: b'5,6'")),
            MALFORMED,
        ),
        (wrapped(ResponseFailed, KeyError(b"gzip, chunked")), MALFORMED),
        (wrapped(ResponseFailed, error.ConnectionLost(), ValueError("x")), MALFORMED),
        (
            wrapped(RequestGenerationFailed, ValueError("body")),  # type: ignore[arg-type]
            UpstreamFailure(502, "could not send the request to the backend", "reset"),
        ),
        # Not wrapped by Agent: nothing says the backend's bytes caused it.
        (ValueError("surprise"), UpstreamFailure(502, "bad gateway", "reset")),
        (KeyError("surprise"), UpstreamFailure(502, "bad gateway", "reset")),
    )
    def test_classify(self, exception: BaseException, expected: UpstreamFailure) -> None:
        """If Agent.request fails with this exception, then classify gives this status, reason, kind and retry safety."""
        self.assertEqual(classify(Failure(exception)), expected)


class ParsedResponseTests(TableTests):
    @rows(
        (b"two Content-Lengths", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", ValueError),
        (b"Content-Length +5", b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello", ValueError),
        (b"Content-Length six", b"HTTP/1.1 200 OK\r\nContent-Length: six\r\n\r\nhello", ValueError),
        (
            b"gzip then chunked",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            KeyError,
        ),
        (b"header without colon", b"HTTP/1.1 200 OK\r\nBroken header line\r\n\r\nhello", ValueError),
        (b"status not a number", b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n", ParseError),
        (b"not HTTP", b"SMTP ready\r\n\r\n", ParseError),
        (b"bad version", b"HTTP/x 200 OK\r\n\r\n", ParseError),
    )
    def test_malformed_response(self, name: bytes, answer: bytes, cause: type[Exception]) -> None:
        """
        If the backend answers with these bytes, then Twisted's client fails
        with ResponseFailed because of C{cause}, and classify calls it a
        malformed response (kind malformed) that may have been sent.
        """
        failure = parsed(answer)
        assert isinstance(failure.value, ResponseFailed), failure
        [reason] = failure.value.reasons
        self.assertTrue(reason.check(cause), reason)
        self.assertEqual(classify(failure), MALFORMED)
        self.assertTrue(classify(failure).maybe_sent)

    @rows(
        (b"nothing", b"", ResponseNeverReceived),
        (b"half a status line", b"HTTP/1.1 20", ResponseFailed),
        (b"half the headers", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", ResponseFailed),
    )
    def test_closed_before_responding(
        self, name: bytes, answer: bytes, kind: type[ResponseFailed]
    ) -> None:
        """If the backend closes after sending only these bytes, then it is a reset (ConnectionDone), not a malformed response."""
        failure = parsed(answer)
        assert isinstance(failure.value, ResponseFailed), failure
        self.assertIs(type(failure.value), kind)
        self.assertTrue(failure.value.reasons[0].check(error.ConnectionDone))
        self.assertEqual(classify(failure), CLOSED)

    def test_connection_lost_before_responding(self) -> None:
        """If the backend's connection is lost mid-headers, then it is a reset, not a malformed response."""
        protocol = HTTP11ClientProtocol()
        protocol.makeConnection(StringTransport())
        request = ClientRequest._construct(b"GET", b"/", Headers({b"host": [b"h"]}), None)
        answer = protocol.request(request)
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n")
        protocol.connectionLost(Failure(error.ConnectionLost()))
        failure = self.failureResultOf(answer, ResponseFailed)
        self.assertEqual(classify(failure), CLOSED)
