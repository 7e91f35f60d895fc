"""
Work out the request target to send to a backend, byte for byte, and check
the parts of a request (its path, its Host) that the proxy must vouch for.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

__all__ = ["has_dot_segment", "join_target", "origin_form", "valid_host"]

_ABSOLUTE_PREFIXES = (b"http://", b"https://")


def origin_form(uri: bytes) -> bytes | None:
    """
    Return the path and query of a request target, or None if it has none.

    An origin-form target (C{/a?b}) is returned as it is.  An absolute-form
    target (C{http://elsewhere/a?b}) loses its scheme and authority: the
    proxy always sends a request to one of its own backends, never to a host
    the client names.
    """
    if uri.startswith(b"/"):
        return uri
    if not uri[:8].lower().startswith(_ABSOLUTE_PREFIXES):
        return None
    after_scheme = uri.index(b"//") + 2
    for index in range(after_scheme, len(uri)):
        if uri[index] in b"/?":
            rest = uri[index:]
            return rest if rest[:1] == b"/" else b"/" + rest
        if uri[index] == ord("#"):
            break
    return b"/"


def join_target(base_path: bytes, target: bytes) -> bytes:
    """
    Join an origin-form target onto a backend's base path.

    Exactly one slash joins the two, and nothing is decoded or re-encoded:
    C{/prefix/} and C{/a%2Fb;x?q=1} give C{/prefix/a%2Fb;x?q=1}.
    """
    if not base_path:
        return target
    path, question, query = target.partition(b"?")
    if base_path.endswith(b"/"):
        if path.startswith(b"/"):
            path = path[1:]
    elif not path.startswith(b"/"):
        path = b"/" + path
    return base_path + path + question + query


def has_dot_segment(target: bytes) -> bool:
    """
    Whether an origin-form target's path has a C{.} or C{..} segment, as a
    backend may see it once it decodes the path.

    Joined onto a backend's base path, such a segment could climb out of
    it (C{/prefix/../admin}).  Segments are split on C{/}, C{%2F} and
    C{%5C} (any case) and C{\\} (some backends take a backslash for a
    slash); C{%2E} (any case) is a dot; and a segment's path parameters
    (C{;...}) are dropped, as Tomcat and Jetty drop them.  The query is
    not looked at.  C{/a%2Fb}, C{/...} and C{/.hidden} have none.
    """
    # Most paths have no dot and no percent sign: they can't have one.
    if b"." not in target and b"%" not in target:
        return False
    path = target.partition(b"?")[0]
    if b"%" in path:
        # Decoded once, as a backend does: %252e is %2e to it, not a dot.
        # A backend that decodes twice, or decodes %u002e or overlong
        # UTF-8, is broken in ways the proxy can't guess, so they are not
        # decoded here.  No replacement makes a new %xx, so the order of
        # the three doesn't matter.
        path = path.lower().replace(b"%2e", b".")
        if b"." not in path:
            return False
        path = path.replace(b"%2f", b"/").replace(b"%5c", b"/")
    elif b"." not in path:
        return False
    for segment in path.replace(b"\\", b"/").split(b"/"):
        if segment.partition(b";")[0] in (b".", b".."):
            return True
    return False


# RFC 3986's reg-name bytes: unreserved, sub-delims and "%" (checked
# further below).  The comma, a sub-delim, is left out: the proxy reads a
# comma in Host as two Host values.
_REG_NAME = (
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    b"-._~!$&'()*+;=%"
)
_HEX = frozenset(b"0123456789ABCDEFabcdef")


def _valid_port(port: bytes) -> bool:
    # bytes.isdigit is ASCII digits only.  RFC 3986 allows an empty port
    # (C{host:}); nobody needs it, so it is refused.
    return 0 < len(port) <= 5 and port.isdigit()


@lru_cache(maxsize=1000)
def valid_host(value: bytes) -> bool:
    """
    Whether a Host header value is a valid C{host[:port]} (RFC 9110
    section 7.2: RFC 3986's authority without userinfo).

    The host is a reg-name (an IPv4 address is one), with well-formed
    percent-encoding and no comma, or an IPv6 address in brackets; IPvFuture
    and zone IDs are refused.  The port, if there is a colon, is 1 to 5
    digits.  Empty values, whitespace, C{/?#@\\}, control and non-ASCII
    bytes are all refused.  Remembered for the thousand most recent values:
    a proxy sees the same few over and over.
    """
    if value.startswith(b"["):
        literal, bracket, port = value[1:].partition(b"]")
        if not bracket or (port and not (port[:1] == b":" and _valid_port(port[1:]))):
            return False
        # ipaddress takes "%" for a zone ID (fe80::1%eth0); a URI would
        # need it as %25, and a Host to a proxy has no use for one.
        if not literal.isascii() or b"%" in literal:
            return False
        try:
            ipaddress.IPv6Address(literal.decode("ascii"))
        except ValueError:
            return False
        return True
    host, colon, port = value.partition(b":")
    if not host or (colon and not _valid_port(port)):
        return False
    # What's left once every reg-name byte is deleted is a byte that
    # isn't one.
    if host.translate(None, _REG_NAME):
        return False
    if b"%" in host:
        parts = host.split(b"%")
        for part in parts[1:]:
            if len(part) < 2 or part[0] not in _HEX or part[1] not in _HEX:
                return False
    return True
