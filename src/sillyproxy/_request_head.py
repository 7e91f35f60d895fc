"""
Reading a client's request head in one pass, when it arrived whole.

twisted.web's HTTPChannel is a LineReceiver: it splits the head into lines
one at a time, runs two C{lineReceived} layers on each, holds each header
line back in case the next one continues it, then checks the name and
value of each with per-byte loops in Python.  A request without a body
from a nearby client arrives whole in one read, and then the head can be
cut into lines at once, checked with a few passes in C, and handed to the
channel as its own line handling would have left it.

Only a plain head is read this way: every line ending a CRLF, no NUL,
within the channel's size limits, a request line of a token method, a
target of visible ASCII and HTTP/1.0 or 1.1, and headers
named by tokens, none of them Content-Length or Transfer-Encoding (a
request with a body takes twisted.web's path, which reads the body).
Anything else, including everything twisted.web would refuse, is left to
its line handling, which answers as it always has.

Relies on C{HTTPChannel}'s C{_HTTPChannel__first_line},
C{_HTTPChannel__header}, C{_receivedHeaderSize}, C{_receivedHeaderCount},
C{_command}, C{_path}, C{_version} and C{_transferDecoder}, on how its
C{lineReceived} makes a request (C{requestFactory(channel, queued)} unless
the factory provides C{INonQueuedRequestFactory}), on LineReceiver's
C{_buffer}, C{_busyReceiving} and C{paused}, and on C{Headers._rawHeaders}
(checked against Twisted 25.5.0 to 26.10.0, pinned by
C{tests/test_compat.py} and C{tests/test_request_head.py}, which compares
both ways of reading).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from twisted.protocols.basic import LineReceiver
from twisted.web.http import HTTPChannel
from twisted.web.iweb import INonQueuedRequestFactory

from ._compat import header_key_of
from ._headers import TCHAR

__all__ = ["RequestHead", "deliver_request_head", "may_read_whole_head", "whole_request_head"]

_END_OF_HEAD = b"\r\n\r\n"
# RFC 9110's VCHAR, deleted by bytes.translate to test a whole target at once.
_VCHAR = bytes(range(0x21, 0x7F))
_VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")
_BODY_HEADERS = (b"Content-Length", b"Transfer-Encoding")


class RequestHead(NamedTuple):
    """A request head read in one pass."""

    # The request line, and its three parts.
    line: bytes
    method: bytes
    target: bytes
    version: bytes
    # (name as Headers keeps it, value without surrounding blanks), in order.
    headers: list[tuple[bytes, bytes]]
    # The request line's and header lines' lengths summed, without CRLFs.
    line_bytes: int
    # Where what follows the head starts in the data.
    end: int


def whole_request_head(data: bytes, max_head: int, max_headers: int) -> RequestHead | None:
    """
    The request head at the start of C{data}, if it is all there, plain,
    at most C{max_head} bytes and C{max_headers} headers, and without a
    body; None if twisted.web should read it line by line.
    """
    end = data.find(_END_OF_HEAD)
    if not 0 < end <= max_head:
        return None
    head = data[:end]
    line_ends = head.count(b"\r\n")
    if head.count(b"\n") != line_ends or head.count(b"\r") != line_ends or line_ends > max_headers:
        return None
    if b"\x00" in head:
        return None
    lines = head.split(b"\r\n")
    request_line = lines[0].split(b" ")
    if len(request_line) != 3:
        return None
    method, target, version = request_line
    if version not in _VERSIONS or not method or method.translate(None, TCHAR):
        return None
    if not target or target.translate(None, _VCHAR):
        return None
    headers = []
    # A name must be a token, which also leaves out an obsolete line fold
    # (a line starting with a blank).
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name.translate(None, TCHAR):
            return None
        key = header_key_of(name)
        if key in _BODY_HEADERS:
            return None
        headers.append((key, value.strip(b" \t")))
    return RequestHead(lines[0], method, target, version, headers, end - 2 * line_ends, end + len(_END_OF_HEAD))


# Whether a request factory makes requests that are not queued, which the
# channel asks of every request: a zope lookup each time otherwise.
@lru_cache(maxsize=16)
def _non_queued(factory: object) -> bool:
    return bool(INonQueuedRequestFactory.providedBy(factory))


def may_read_whole_head(channel: HTTPChannel) -> bool:
    """Whether C{channel} is waiting for a request's first line, with nothing of it buffered."""
    return bool(
        channel.line_mode
        and channel.persistent
        and not channel._busyReceiving
        and not channel._buffer
        and not channel.paused
        and channel._HTTPChannel__first_line == 1  # type: ignore[attr-defined]
        and not channel._HTTPChannel__header  # type: ignore[attr-defined]
        and channel._transferDecoder is None
    )


def deliver_request_head(channel: HTTPChannel, head: RequestHead, data: bytes) -> None:
    """
    Hand C{channel} the request whose C{head} starts C{data}, then what
    follows it, as its own C{dataReceived} would have; only when
    L{may_read_whole_head}.
    """
    channel.resetTimeout()
    # What follows the head waits in the buffer while the request is
    # handled, as it would have.
    channel._buffer = data[head.end :]
    channel._busyReceiving = True
    try:
        channel._receivedHeaderSize = head.line_bytes
        factory = channel.requestFactory
        if _non_queued(factory):
            request = factory(channel)
        else:
            request = factory(channel, len(channel.requests))
        channel.requests.append(request)
        channel._HTTPChannel__first_line = 0  # type: ignore[attr-defined]
        channel._command = head.method
        channel._path = head.target
        channel._version = head.version
        raw = request.requestHeaders._rawHeaders
        for key, value in head.headers:
            values = raw.get(key)
            if values is None:
                raw[key] = [value]
            else:
                values.append(value)
        channel._receivedHeaderCount = len(head.headers)
        channel.allHeadersReceived()
        # No body to wait for: whole_request_head leaves those to twisted.web.
        channel.allContentReceived()
    finally:
        channel._busyReceiving = False
    # As LineReceiver stops after a line that left its transport closing.
    transport = channel.transport
    if channel._buffer and not getattr(transport, "disconnecting", False):
        LineReceiver.dataReceived(channel, b"")
