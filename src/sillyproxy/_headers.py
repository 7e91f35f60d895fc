"""Header rules for each direction of the forwarding hop (RFC 9110 section 7.6.1)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "HOP_BY_HOP",
    "RawHeaders",
    "connection_named",
    "connection_tokens",
    "for_backend",
    "for_client",
    "new_request_id",
    "request_id",
]

RawHeaders = Iterable[tuple[bytes, Sequence[bytes]]]

# Headers that describe one connection, never the message: a proxy must not
# pass them on.  Transfer-Encoding and (on requests) Content-Length are also
# framing, which Agent and twisted.web write for themselves; a second copy
# would let a client smuggle a request past the proxy.
HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_REQUEST_DROPPED = HOP_BY_HOP | {
    b"content-length",
    b"color",
    b"x-forwarded-host",
    b"x-forwarded-proto",
    b"x-request-id",
}
# Content-Length reaches here only on HEAD responses (Agent keeps the framing
# to itself otherwise), where it describes the resource and must pass.
_RESPONSE_DROPPED = HOP_BY_HOP


def connection_tokens(values: Iterable[bytes]) -> frozenset[bytes]:
    """The lower-cased tokens of Connection header values, each a comma-separated list."""
    return frozenset(
        token.strip().lower()
        for value in values
        for token in value.split(b",")
        if token.strip()
    )


def connection_named(headers: RawHeaders) -> frozenset[bytes]:
    """Return the lower-cased header names listed in every Connection header."""
    named: frozenset[bytes] = frozenset()
    for name, values in headers:
        if name.lower() == b"connection":
            named |= connection_tokens(values)
    return named


def _without(
    headers: RawHeaders, dropped: frozenset[bytes]
) -> list[tuple[bytes, bytes, Sequence[bytes]]]:
    """The headers not in C{dropped} nor named by Connection, as (lower-cased name, name, values)."""
    kept = []
    named: frozenset[bytes] = frozenset()
    for name, values in headers:
        lowered = name.lower()
        if lowered not in dropped:
            kept.append((lowered, name, values))
        elif lowered == b"connection":
            named |= connection_tokens(values)
    if named:
        kept = [header for header in kept if header[0] not in named]
    return kept


def for_backend(
    headers: RawHeaders,
    color: bytes,
    client_address: bytes | None,
    proto: bytes,
    request_id: bytes,
) -> list[tuple[bytes, Sequence[bytes]]]:
    """
    Turn a client's request headers into the headers sent to the backend.

    Hop-by-hop and framing headers go; C{Color}, C{X-Forwarded-Proto},
    C{X-Forwarded-Host} and C{X-Request-Id} are replaced, whatever the
    client sent; the client's address is appended to C{X-Forwarded-For};
    C{Host} is kept as it is.

    @param client_address: the peer's IP address, or None if the connection
        has none (a UNIX socket), in which case X-Forwarded-For is passed on
        unchanged.
    @param proto: C{b"http"} or C{b"https"}, how the client reached the proxy.
    @param request_id: the request's id (see L{request_id}).
    """
    host: Sequence[bytes] = ()
    forwarded_for: list[bytes] = []
    result: list[tuple[bytes, Sequence[bytes]]] = []
    for lowered, name, values in _without(headers, _REQUEST_DROPPED):
        if lowered == b"x-forwarded-for":
            forwarded_for.extend(values)
            continue
        if lowered == b"host":
            host = values
        result.append((name, values))
    if client_address is not None:
        forwarded_for.append(client_address)
    if forwarded_for:
        result.append((b"X-Forwarded-For", [b", ".join(forwarded_for)]))
    if len(host) == 1:
        result.append((b"X-Forwarded-Host", [host[0]]))
    result.append((b"X-Forwarded-Proto", [proto]))
    result.append((b"X-Request-Id", [request_id]))
    result.append((b"Color", [color]))
    return result


# A client's own X-Request-Id is kept when it is one run of visible ASCII
# that fits in a log line; anything else could break or flood the log.
_VALID_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}\Z")


def request_id(values: Sequence[bytes] | None, generate: Callable[[], bytes]) -> bytes:
    """
    The id a request is logged and forwarded under: the client's single
    C{X-Request-Id} if it is valid, else C{generate()}.
    """
    if values is not None and len(values) == 1 and _VALID_REQUEST_ID.match(values[0]):
        return values[0]
    return generate()


def new_request_id() -> bytes:
    """128 random bits as 32 hex digits."""
    return os.urandom(16).hex().encode("ascii")


def for_client(headers: RawHeaders) -> list[tuple[bytes, Sequence[bytes]]]:
    """
    Turn a backend's response headers into the headers sent to the client.

    Hop-by-hop headers go.  Everything else, repeated headers such as
    Set-Cookie included, passes through unchanged.
    """
    return [(name, values) for _, name, values in _without(headers, _RESPONSE_DROPPED)]
