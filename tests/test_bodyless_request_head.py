"""
A request without a body is sent over the pool's protocol exactly as
Twisted's HTTP11ClientProtocol sends it: the same bytes, and the same
outcome whatever the backend or the caller then does.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web._newclient import HTTP11ClientProtocol
from twisted.web._newclient import Request as ClientRequest
from twisted.web.http_headers import Headers

from sillyproxy._pool import _ClientProtocol, bodyless_request_head

from .support import BodyCollector, TableTests, rows


def _request(method: bytes, headers: list[tuple[bytes, bytes]], persistent: bool = True) -> ClientRequest:
    kept = Headers()
    for name, value in headers:
        kept.addRawHeader(name, value)
    return ClientRequest._construct(method, b"/a/b?c=d", kept, None, persistent)


def _written(protocol_class: type[HTTP11ClientProtocol], request: ClientRequest) -> tuple[bytes, str, str]:
    """What C{protocol_class} writes for C{request}, its state after, and the answer so far."""
    protocol = protocol_class()
    transport = StringTransport()
    protocol.makeConnection(transport)
    answers: list[object] = []
    protocol.request(request).addBoth(answers.append)
    answer = "waiting"
    if answers:
        [failure] = answers
        assert isinstance(failure, Failure)
        answer = type(failure.value).__name__
        failure.trap(Exception)
    return transport.value(), protocol.state, answer


_HOST = (b"host", b"backend:8080")


class BodylessHeadTests(TableTests):
    @rows(
        ("GET", b"GET", [_HOST], True),
        ("HEAD", b"HEAD", [_HOST, (b"accept", b"*/*")], True),
        ("DELETE", b"DELETE", [_HOST], True),
        ("OPTIONS", b"OPTIONS", [_HOST], True),
        ("POST, Content-Length: 0", b"POST", [_HOST], True),
        ("PUT, Content-Length: 0", b"PUT", [_HOST], True),
        ("not persistent", b"GET", [_HOST], False),
        ("POST not persistent", b"POST", [_HOST], False),
        ("repeated header", b"GET", [_HOST, (b"x-a", b"1"), (b"x-a", b"2"), (b"cookie", b"k=v")], True),
        ("header order kept", b"GET", [(b"x-z", b"z"), _HOST, (b"accept", b"a")], True),
        ("empty value", b"GET", [_HOST, (b"x-empty", b"")], True),
        ("odd case name", b"GET", [_HOST, (b"X-wEiRd-NAME", b"v")], True),
        ("extension method", b"PURGE", [_HOST], True),
    )
    def test_same_bytes_as_twisted(
        self, _: str, method: bytes, headers: list[tuple[bytes, bytes]], persistent: bool
    ) -> None:
        ours = _written(_ClientProtocol, _request(method, headers, persistent))
        twisteds = _written(HTTP11ClientProtocol, _request(method, headers, persistent))
        self.assertEqual(ours, twisteds)
        self.assertEqual(ours[1:], ("WAITING", "waiting"))
        self.assertEqual(bodyless_request_head(_request(method, headers, persistent)), ours[0])

    @rows(
        ("no Host", [(b"accept", b"*/*")]),
        ("two Hosts", [_HOST, (b"host", b"other")]),
    )
    def test_host_trouble_left_to_twisted(self, _: str, headers: list[tuple[bytes, bytes]]) -> None:
        request = _request(b"GET", headers)
        self.assertIsNone(bodyless_request_head(request))
        self.assertEqual(
            _written(_ClientProtocol, _request(b"GET", headers)),
            _written(HTTP11ClientProtocol, _request(b"GET", headers)),
        )
        self.assertEqual(_written(_ClientProtocol, request)[2], "RequestGenerationFailed")


def _outcome(protocol_class: type[HTTP11ClientProtocol], events: list[tuple[str, bytes]]) -> dict[str, Any]:
    """
    Send a GET over C{protocol_class}, then play C{events} on it: bytes
    from the backend, the connection lost, the caller cancelling, a second
    request.  Report the answers, the body, the protocol's state, and
    whether it went back to the pool or closed.
    """
    quiescent: list[object] = []
    protocol = protocol_class(quiescent.append)
    transport = StringTransport()
    protocol.makeConnection(transport)
    answers: list[object] = []
    body = BodyCollector()

    def answered(answer: object) -> None:
        if isinstance(answer, Failure):
            reasons = getattr(answer.value, "reasons", [])
            answers.append((type(answer.value).__name__, [type(r.value).__name__ for r in reasons]))
            return
        answers.append(answer.code)  # type: ignore[attr-defined]
        answer.deliverBody(body)  # type: ignore[attr-defined]

    pending = protocol.request(_request(b"GET", [_HOST]))
    pending.addBoth(answered)
    for event, data in events:
        if event == "receive":
            protocol.dataReceived(data)
        elif event == "lose":
            protocol.connectionLost(Failure(ConnectionError("gone")))
        elif event == "cancel":
            pending.cancel()
        elif event == "again":
            protocol.request(_request(b"GET", [_HOST])).addBoth(answered)
    return {
        "answers": answers,
        "body": body.data,
        "ended": body.ended,
        "state": protocol.state,
        "quiescent": len(quiescent),
        "aborted": transport.disconnecting or transport.disconnected,
        "written": transport.value().count(b"GET "),
    }


_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nblue ok\n"


class BodylessOutcomeTests(TableTests):
    @rows(
        ("whole response", [("receive", _OK)]),
        ("response in pieces", [("receive", _OK[:10]), ("receive", _OK[10:40]), ("receive", _OK[40:])]),
        ("backend says close", [("receive", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")]),
        ("lost before the head", [("lose", b"")]),
        ("lost in the body", [("receive", _OK[:-3]), ("lose", b"")]),
        ("cancelled while waiting", [("cancel", b"")]),
        ("cancelled, then lost", [("cancel", b""), ("lose", b"")]),
        ("malformed status line", [("receive", b"HTTP/1.1 abc\r\n\r\n")]),
        ("second request while busy", [("again", b""), ("receive", _OK)]),
        ("second request once done", [("receive", _OK), ("again", b""), ("receive", _OK)]),
        ("body to the close", [("receive", b"HTTP/1.1 200 OK\r\n\r\nsome"), ("lose", b"")]),
    )
    def test_same_outcome_as_twisted(self, _: str, events: list[tuple[str, bytes]]) -> None:
        ours = _outcome(_ClientProtocol, events)
        self.assertEqual(ours, _outcome(HTTP11ClientProtocol, events))
        self.assertTrue(ours["answers"])
