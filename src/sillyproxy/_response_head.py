"""
Reading a backend response's head in one pass, when it arrived whole.

Twisted's HTTP/1.1 client parser is a LineReceiver: it splits the head into
lines one at a time and runs its state machine on each.  A small response
from a backend on the same network arrives whole in one read, and then the
head can be cut into lines at once and given to the parser's own
C{statusReceived}, C{headerReceived} and C{allHeadersReceived}, in the
order and with the values its line handling would have used; a header
that C{headerReceived} would only add to the response's headers is added
there directly.  Anything that line handling treats specially (a bare CR
or LF, an obsolete line fold, a line past C{MAX_LENGTH}, a head split
across reads) is left to it.

Relies on C{HTTPClientParser}'s C{state} (the C{STATUS}/C{HEADER}
constants), C{_everReceivedData}, C{headers} and
C{CONNECTION_CONTROL_HEADERS} (the lower-case names whose place
C{headerReceived} leaves to C{isConnectionControlHeader}; any other it
adds to C{headers}), C{Headers._rawHeaders}, and LineReceiver's
C{_buffer}, C{_busyReceiving}, C{line_mode} and C{MAX_LENGTH} (checked
against Twisted 25.5.0 to 26.10.0, pinned by C{tests/test_compat.py} and
C{tests/test_response_head.py}, which compares both ways of reading).
"""

from __future__ import annotations

from twisted.protocols.basic import LineReceiver
from twisted.web._newclient import HEADER, STATUS, HTTPClientParser

from ._compat import header_key_of

__all__ = ["read_whole_head"]

_END_OF_HEAD = b"\r\n\r\n"


def read_whole_head(parser: HTTPClientParser, data: bytes) -> bool:
    """
    Give C{parser} the head at the start of C{data}, and what follows it,
    if the head is all there and plain; return False, having done nothing,
    if the parser should read C{data} line by line instead.

    Raises what the parser raises for a malformed head, as its own
    C{dataReceived} would.
    """
    if parser.state != STATUS or parser._buffer or not parser.line_mode or parser._busyReceiving:
        return False
    end = data.find(_END_OF_HEAD)
    if not 0 < end <= parser.MAX_LENGTH:
        return False
    head = data[:end]
    # Every CR and LF part of a CRLF, and no line starting with blanks.
    line_ends = head.count(b"\r\n")
    if head.count(b"\n") != line_ends or head.count(b"\r") != line_ends:
        return False
    if b"\n " in head or b"\n\t" in head:
        return False
    parser._everReceivedData = True
    lines = head.split(b"\r\n")
    parser.statusReceived(lines[0])
    parser.state = HEADER
    header_received = parser.headerReceived
    connection_control = parser.CONNECTION_CONTROL_HEADERS
    kept = parser.headers._rawHeaders
    for line in lines[1:]:
        name, value = line.split(b":", 1)
        value = value.strip()
        lowered = name.lower()
        if lowered in connection_control:
            # The parser's own way for the few headers it may keep apart.
            header_received(name, value)
            continue
        # What headerReceived does with any other header, short of the
        # conversions a value with a line break would need: this one has
        # none.  A name that is not a token is refused as Headers refuses it.
        key = header_key_of(lowered)
        values = kept.get(key)
        if values is None:
            kept[key] = [value]
        else:
            values.append(value)
    # What follows the head waits in the buffer while the headers are
    # handled, as it would have: a response without a body hands it on.
    parser._buffer = data[end + len(_END_OF_HEAD) :]
    parser._busyReceiving = True
    try:
        parser.allHeadersReceived()
    finally:
        parser._busyReceiving = False
    # As LineReceiver stops after a line that left its transport closing.
    if parser._buffer and not getattr(parser.transport, "disconnecting", False):
        LineReceiver.dataReceived(parser, b"")
    return True
