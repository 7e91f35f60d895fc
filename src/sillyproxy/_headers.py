"""Header rules for each direction of the forwarding hop (RFC 9110 section 7.6.1)."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Union

__all__ = [
    "HOP_BY_HOP",
    "Networks",
    "RawHeaders",
    "TCHAR",
    "connection_named",
    "connection_tokens",
    "for_backend",
    "for_client",
    "is_trusted",
    "new_request_id",
    "real_client",
    "request_id",
]

RawHeaders = Iterable[tuple[bytes, Sequence[bytes]]]
# SILLYPROXY_TRUSTED_PROXIES, as _config parses it.
Networks = Sequence[Union[ipaddress.IPv4Network, ipaddress.IPv6Network]]

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
# From a trusted proxy, its X-Forwarded-Proto and -Host, Forwarded and
# X-Real-IP describe the client and are kept; from anyone else they are
# claims the proxy cannot check, so they go (and the proxy sets its own).
_REQUEST_DROPPED_TRUSTED = HOP_BY_HOP | {
    b"content-length",
    b"color",
    b"x-request-id",
    # Marks the proxy's own shadow copies: a backend may skip side effects
    # for them, so no client may claim it.
    b"sillyproxy-mirror",
}
_REQUEST_DROPPED = _REQUEST_DROPPED_TRUSTED | {
    b"x-forwarded-host",
    b"x-forwarded-proto",
    b"forwarded",
    b"x-real-ip",
}
# The headers for_backend looks at as they pass; the rest it copies.
_NOTED = frozenset({b"host", b"x-forwarded-for", b"forwarded", b"x-forwarded-proto", b"x-forwarded-host"})
# Never hop-by-hop, whatever Connection says: without Host, Agent would send
# the backend's own name, a request the client never made.  (Content-Length
# and Transfer-Encoding are dropped and re-framed anyway, and the headers the
# proxy sets itself are added after Connection is applied.)
_NEVER_NAMED = frozenset({b"host"})
# Content-Length reaches here only on HEAD responses (Agent keeps the framing
# to itself otherwise), where it describes the resource and must pass.
_RESPONSE_DROPPED = HOP_BY_HOP


def connection_tokens(values: Sequence[bytes]) -> frozenset[bytes]:
    """The lower-cased tokens of Connection header values, each a comma-separated list."""
    if len(values) == 1:
        # Nearly always one value, and one of a few ("keep-alive", "close").
        return _tokens_of(values[0])
    return _tokens(values)


def _tokens(values: Sequence[bytes]) -> frozenset[bytes]:
    return frozenset(
        token.strip().lower()
        for value in values
        for token in value.split(b",")
        if token.strip()
    )


# Connection values seen, and their tokens; bounded, as clients choose them.
@lru_cache(maxsize=256)
def _tokens_of(value: bytes) -> frozenset[bytes]:
    return _tokens((value,))


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
    """
    The headers not in C{dropped} nor named by Connection (which never drops
    Host), as (lower-cased name, name, values).
    """
    kept = []
    named: frozenset[bytes] = frozenset()
    for name, values in headers:
        lowered = name.lower()
        if lowered not in dropped:
            kept.append((lowered, name, values))
        elif lowered == b"connection":
            named |= connection_tokens(values)
    if named:
        named -= _NEVER_NAMED
        kept = [header for header in kept if header[0] not in named]
    return kept


def for_backend(
    headers: RawHeaders,
    color: bytes,
    client_address: bytes | None,
    proto: bytes,
    request_id: bytes,
    *,
    trusted: bool = False,
) -> list[tuple[bytes, Sequence[bytes]]]:
    """
    Turn a client's request headers into the headers sent to the backend.

    Hop-by-hop and framing headers go; C{Color} and C{X-Request-Id} are
    replaced, whatever the client sent; the client's address is appended to
    C{X-Forwarded-For}; C{Host} is kept as it is, even if Connection names it.

    From an untrusted peer, C{X-Forwarded-Proto} and C{X-Forwarded-Host} are
    replaced, C{X-Real-IP} is removed and C{Forwarded} is this hop's element
    alone.  From a trusted one, its own C{X-Forwarded-Proto},
    C{X-Forwarded-Host} and C{X-Real-IP} are kept (the first two set as for
    anyone if it sent none) and this hop's element is appended to its
    C{Forwarded}.

    @param client_address: the peer's IP address, or None if the connection
        has none (a UNIX socket), in which case X-Forwarded-For is passed on
        unchanged and Forwarded has no C{for}.
    @param proto: C{b"http"} or C{b"https"}, how the client reached the proxy.
    @param request_id: the request's id (see L{request_id}).
    @param trusted: whether the peer is a proxy in front of this one whose
        forwarding headers are believed (see L{is_trusted}).
    """
    host: Sequence[bytes] = ()
    forwarded_for: list[bytes] = []
    forwarded: list[bytes] = []
    sent_proto = sent_host = False
    result: list[tuple[bytes, Sequence[bytes]]] = []
    for lowered, name, values in _without(
        headers, _REQUEST_DROPPED_TRUSTED if trusted else _REQUEST_DROPPED
    ):
        if lowered in _NOTED:
            # Only Host and X-Forwarded-For come this far from an untrusted peer.
            if lowered == b"x-forwarded-for":
                forwarded_for.extend(values)
                continue
            if lowered == b"forwarded":
                forwarded.extend(values)
                continue
            if lowered == b"host":
                host = values
            elif lowered == b"x-forwarded-proto":
                sent_proto = True
            else:
                sent_host = True
        result.append((name, values))
    if client_address is not None:
        forwarded_for.append(client_address)
    if forwarded_for:
        result.append((b"X-Forwarded-For", [b", ".join(forwarded_for)]))
    element = _forwarded_element(client_address, proto, host)
    if forwarded:
        forwarded.append(element)
        element = b", ".join(forwarded)
    result.append((b"Forwarded", [element]))
    if len(host) == 1 and not sent_host:
        result.append((b"X-Forwarded-Host", [host[0]]))
    if not sent_proto:
        result.append((b"X-Forwarded-Proto", [proto]))
    result.append((b"X-Request-Id", [request_id]))
    result.append((b"Color", [color]))
    return result


# RFC 9110 section 5.6.2: the characters of a token (header names, methods,
# cookie names), deleted by bytes.translate to test a whole token at once.
TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# What a quoted-string can hold (section 5.6.4): HTAB, SP, visible ASCII and
# obs-text; " and \ only escaped.  No other control character fits at all.
_QUOTABLE = b"\t" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))


def _forwarded_value(value: bytes) -> bytes | None:
    """C{value} as an RFC 7239 value: a token if it is one, else a quoted string; None if it cannot be either."""
    if value and not value.translate(None, TCHAR):
        return value
    if value.translate(None, _QUOTABLE):
        return None
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _forwarded_element(client_address: bytes | None, proto: bytes, host: Sequence[bytes]) -> bytes:
    """This hop's Forwarded element (RFC 7239): C{for=...;proto=...;host=...}."""
    return _make_forwarded_element(client_address, proto, host[0] if len(host) == 1 else None)


# A client sends many requests, all with the same Host.
@lru_cache(maxsize=4096)
def _make_forwarded_element(client_address: bytes | None, proto: bytes, host: bytes | None) -> bytes:
    element = b"proto=" + proto
    if client_address is not None:
        # An IPv6 node is bracketed, and so quoted (section 6).
        node = _forwarded_value(
            b"[" + client_address + b"]" if b":" in client_address else client_address
        )
        if node is not None:
            element = b"for=" + node + b";" + element
    if host is not None:
        value = _forwarded_value(host)
        if value is not None:
            element += b";host=" + value
    return element


def is_trusted(peer: str | None, networks: Networks) -> bool:
    """
    Whether C{peer}, an IP address as text, is in one of C{networks}.  An
    IPv4-mapped IPv6 address (C{::ffff:10.0.0.1}, what a dual-stack socket
    reports for an IPv4 client) is also checked as the IPv4 address it maps.
    None (no address, a UNIX socket) and anything not an IP are not trusted.
    """
    if not networks or not peer:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return _in_networks(address, networks)


def _in_networks(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Networks
) -> bool:
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    # An address is never in a network of the other version (no TypeError).
    for network in networks:
        if address in network or (mapped is not None and mapped in network):
            return True
    return False


def real_client(peer: str, forwarded_for: Sequence[bytes] | None, networks: Networks) -> str:
    """
    The client to log for a request from C{peer}.

    An untrusted peer is the client.  From a trusted one, X-Forwarded-For is
    walked from the right past trusted addresses, and the first untrusted
    one is the client (nginx's C{real_ip_recursive on}); if every address is
    trusted, the leftmost.  An entry that is not a plain IP address (a port,
    brackets, a zone, C{unknown}) ends the walk: the last good address seen,
    or the peer, is the client, since nothing left of it can be believed.

    @param forwarded_for: the request's X-Forwarded-For values as received,
        or None if it had none.
    """
    if not forwarded_for or not is_trusted(peer, networks):
        return peer
    client = peer
    for value in reversed(forwarded_for):
        for item in reversed(value.split(b",")):
            entry = item.strip(b" \t")
            if not entry:
                continue  # an empty list element, which RFC 9110 says to ignore
            try:
                text = entry.decode("ascii")
                if "%" in text:
                    raise ValueError("a zone")
                address = ipaddress.ip_address(text)
            except ValueError:
                return client
            client = text
            if not _in_networks(address, networks):
                return client
    return client


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


class _RandomHex:
    """
    Hex digits from the OS's random source, fetched 2 KiB at a time: a
    system call per request id cost more than the id is worth.
    """

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def take(self, digits: int) -> bytes:
        end = self._at + digits
        if end > len(self._pool):
            self._pool = os.urandom(2048).hex().encode("ascii")
            self._at, end = 0, digits
        start, self._at = self._at, end
        return self._pool[start:end]


_random_hex = _RandomHex()


def new_request_id() -> bytes:
    """128 random bits as 32 hex digits."""
    return _random_hex.take(32)


def for_client(headers: RawHeaders) -> list[tuple[bytes, Sequence[bytes]]]:
    """
    Turn a backend's response headers into the headers sent to the client.

    Hop-by-hop headers go.  Everything else, repeated headers such as
    Set-Cookie included, passes through unchanged.
    """
    return [(name, values) for _, name, values in _without(headers, _RESPONSE_DROPPED)]
