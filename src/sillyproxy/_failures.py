"""Turn a failed backend request into the status and one-line reason the client sees."""

from __future__ import annotations

from attrs import frozen
from twisted.internet import error
from twisted.python.failure import Failure
from twisted.web.client import (
    RequestGenerationFailed,
    ResponseFailed,
    ResponseNeverReceived,
)

from ._compat import ParseError

__all__ = ["NoHealthyAddress", "UpstreamFailure", "classify", "is_connect_failure"]


@frozen
class UpstreamFailure:
    """What went wrong talking to a backend, in the words a client gets."""

    status: int
    # One line for the client; names no address, so it leaks nothing internal.
    message: str
    # A low-cardinality label for logs and metrics: connect, timeout, reset
    # or malformed.
    kind: str
    # Whether the request may have reached the backend; if not, it is safe
    # to send it again elsewhere, whatever its method.
    maybe_sent: bool = True


class NoHealthyAddress(Exception):
    """Every address of a colour's backend is ejected or failing its health checks."""


def is_connect_failure(failure: Failure) -> bool:
    """Whether C{failure} means the connection was never made, so nothing was sent."""
    return bool(
        failure.check(error.ConnectError, error.TimeoutError, error.DNSLookupError)
    ) and not failure.check(error.ConnectingCancelledError)


def _causes(failure: Failure) -> list[Failure]:
    # Agent wraps the real causes in ResponseFailed-style exceptions.
    reasons = getattr(failure.value, "reasons", None)
    return list(reasons) if reasons else [failure]


# What Twisted's response parser raises on bytes it cannot make sense of:
# ParseError for the status line; ValueError for a header line without a
# colon or a bad or conflicting Content-Length; KeyError for a
# Transfer-Encoding other than chunked.  The connection's own end
# (ConnectionDone, ConnectionLost) is none of these.
_MALFORMED = (ParseError, ValueError, KeyError)


def _malformed(failure: Failure) -> bool:
    return any(cause.check(*_MALFORMED) for cause in _causes(failure))


def classify(failure: Failure) -> UpstreamFailure:
    """Map a failure of C{Agent.request} to a 502 or 504 and a reason."""
    if failure.check(NoHealthyAddress):
        return UpstreamFailure(503, "no healthy backends", "connect", maybe_sent=False)
    if failure.check(error.DNSLookupError):
        return UpstreamFailure(502, "backend host name did not resolve", "connect", maybe_sent=False)
    if failure.check(error.ConnectionRefusedError):
        return UpstreamFailure(502, "backend refused the connection", "connect", maybe_sent=False)
    if failure.check(error.TimeoutError):
        return UpstreamFailure(
            504, "backend did not accept the connection in time", "timeout", maybe_sent=False
        )
    if failure.check(error.ConnectError):
        return UpstreamFailure(502, "backend unreachable", "connect", maybe_sent=False)
    if failure.check(ResponseNeverReceived, ResponseFailed):
        if _malformed(failure):
            return UpstreamFailure(502, "backend sent a malformed response", "malformed")
        return UpstreamFailure(
            502, "backend closed the connection before responding", "reset"
        )
    if failure.check(RequestGenerationFailed):
        return UpstreamFailure(502, "could not send the request to the backend", "reset")
    return UpstreamFailure(502, "bad gateway", "reset")
