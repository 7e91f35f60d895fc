"""
Sticky routing's pure parts: which colour a user's key belongs to, the key
itself, and the Cookie header it travels in.

A key's colour is found by weighted rendezvous hashing (highest random
weight): every colour scores the key, C{-weight / ln(u)} with C{u} a uniform
number in (0, 1) drawn from HMAC-SHA256(secret, colour + NUL + key), and the
highest score wins.  Colour C{i} wins with probability C{w_i / sum(w)}
exactly, and since a colour's score depends only on its own weight, raising
one colour's weight can only make it win more keys (users move only to it),
lowering it only lose them, weight 0 wins none, and scaling every weight by
the same factor moves nobody.  Being a pure function of (key, weights,
secret), every replica, worker and restart agrees with no shared state, and
the next-best colour (for failover) is the one the key would get were its
best colour at weight 0.

Everything here runs per request, so the HMAC keys' pads and each colour's
name are hashed once per weight set (L{Ranker}), not per request.
"""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter

from ._headers import TCHAR

__all__ = [
    "DEFAULT_COOKIE",
    "DEFAULT_MAX_AGE",
    "MAX_KEY_LENGTH",
    "Ranker",
    "STICKY_OFF",
    "StickyMode",
    "cookie",
    "is_token",
    "new_key",
    "parse_sticky",
    "rank",
    "set_cookie",
    "uniform_log",
    "valid_key",
    "without_cookies",
]

DEFAULT_COOKIE = b"sillyproxy"
# Thirty days, in seconds.
DEFAULT_MAX_AGE = 30 * 24 * 3600
MAX_KEY_LENGTH = 128

# --- The rendezvous hash ------------------------------------------------------

# HMAC (RFC 2104) over SHA-256, done with hashlib: the pads and the colour's
# name are hashed once, and each request only copies the two states.
# Ranking two colours takes ~2.1 us this way, ~3.9 copying hmac.HMAC
# objects (Python-level copy()) and ~5.4 with hmac.digest() (OpenSSL 3
# looks the digest up by name on every call).
_BLOCK_SIZE = 64
# Translation tables that XOR every byte of the key with HMAC's ipad and opad.
_INNER_PAD = bytes(b ^ 0x36 for b in range(256))
_OUTER_PAD = bytes(b ^ 0x5C for b in range(256))

_TWO_64 = 2**64
_HALF = 2**63
_INVERSE_TWO_64 = 1.0 / _TWO_64
# The digest's first 8 bytes as a big-endian number, faster than int.from_bytes.
_unpack_u64 = struct.Struct(">Q").unpack_from
_log = math.log
_log1p = math.log1p


def uniform_log(n: int) -> float:
    """
    ln(u) for u = (n + 0.5) / 2**64, with C{n} a 64-bit number: always
    finite and below 0.

    Computed as written, u would round to 1.0 for n within 2**10 of 2**64,
    and ln(1.0) = 0 would divide the score by zero; for the upper half of
    the range it is ln(1 - (2**64 - n - 0.5) / 2**64) instead, which
    log1p keeps exact to the last bits.
    """
    if n < _HALF:
        return _log((n + 0.5) * _INVERSE_TWO_64)
    return _log1p(((n - _TWO_64) + 0.5) * _INVERSE_TWO_64)


class Ranker:
    """
    The colours of one set of weights, ranked for any key by L{rank}; hold
    one per weight set, since making it costs several hashes.

    @param weights: (colour, weight) pairs; colours of weight 0 or less are
        never ranked.
    @param secret: the HMAC key; None (unset) is the empty key, which makes
        every key's colour predictable by anyone.
    """

    __slots__ = ("_colours", "_outer")

    def __init__(self, weights: Sequence[tuple[str, int]], secret: bytes | None = None) -> None:
        key = secret or b""
        if len(key) > _BLOCK_SIZE:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK_SIZE, b"\0")
        inner = key.translate(_INNER_PAD)
        self._outer = hashlib.sha256(key.translate(_OUTER_PAD))
        # In name order: the stable sort in rank() then breaks ties by name.
        self._colours = tuple(
            (
                colour,
                -float(weight),
                hashlib.sha256(inner + colour.lower().encode("utf-8") + b"\0"),
            )
            for colour, weight in sorted(weights, key=itemgetter(0))
            if weight > 0
        )

    def rank(self, key: bytes) -> list[str]:
        """The colours of weight above 0 for C{key}, best first."""
        outer = self._outer
        scored = []
        for colour, negative_weight, prefix in self._colours:
            inner = prefix.copy()
            inner.update(key)
            mac = outer.copy()
            mac.update(inner.digest())
            n = _unpack_u64(mac.digest())[0]
            # uniform_log(n), inlined: a call costs as much as the log.
            if n < _HALF:
                log_u = _log((n + 0.5) * _INVERSE_TWO_64)
            else:
                log_u = _log1p(((n - _TWO_64) + 0.5) * _INVERSE_TWO_64)
            scored.append((negative_weight / log_u, colour))
        if len(scored) == 2:
            # The usual blue/green pair, without a sort.
            (first_score, first), (second_score, second) = scored
            return [first, second] if first_score >= second_score else [second, first]
        scored.sort(key=itemgetter(0), reverse=True)
        return [colour for _, colour in scored]


def rank(key: bytes, weights: Sequence[tuple[str, int]], secret: bytes | None) -> list[str]:
    """
    The colours of weight above 0, best first for C{key}, by weighted
    rendezvous hashing: highest C{-weight / ln(u)} first, u drawn from
    HMAC-SHA256(key=secret or b"", msg=colour.lower() + b"\\0" + key) as
    (n + 0.5) / 2**64 with n its first 8 bytes (big-endian); equal scores
    in colour-name order.  Per request, use a L{Ranker}.
    """
    return Ranker(weights, secret).rank(key)


# --- The key ------------------------------------------------------------------

# Maps "-" and "_" to a letter, so that bytes.isalnum() (ASCII only, unlike
# str.isalnum()) checks a whole key in one C pass.
_DASHES_AS_LETTERS = bytes(range(256)).replace(b"-", b"a").replace(b"_", b"a")


def new_key() -> str:
    """A new user's key: 128 random bits, URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode("ascii")


def valid_key(value: str | bytes) -> bool:
    """Whether a client-sent key can be used as it is: 1 to 128 characters of [A-Za-z0-9_-]."""
    if isinstance(value, str):
        if not value.isascii():
            return False
        value = value.encode("ascii")
    # Not a regular expression, nor translate() deleting the allowed bytes:
    # the call takes ~130 ns (~190 for keys with a - or _) against ~220.
    return 0 < len(value) <= MAX_KEY_LENGTH and (
        value.isalnum() or value.translate(_DASHES_AS_LETTERS).isalnum()
    )


# --- The Cookie header ----------------------------------------------------------


def cookie(values: Sequence[bytes] | None, name: bytes) -> bytes | None:
    """
    The value of cookie C{name} in a request's Cookie header values
    (C{a=b; c=d}, RFC 6265; a request may send several), the first if it
    is there more than once, else None.  Names match exactly (they are
    case-sensitive); whitespace around names and values is not part of
    them, and a value's quotes are kept.
    """
    if not values:
        return None
    for value in values:
        # Most requests carry other cookies only: skip those without a split.
        if name not in value:
            continue
        for pair in value.split(b";"):
            found, equals, content = pair.partition(b"=")
            if equals and found.strip() == name:
                return content.strip()
    return None


def without_cookies(values: Sequence[bytes] | None, names: frozenset[bytes]) -> list[bytes] | None:
    """
    Cookie header values with the named cookies taken out: the other
    cookies as they were, in their order, joined by C{"; "} into one value;
    None if no cookie is left (so the header is dropped).  Values in which
    no name is found at all come back as they are, the same list if given
    one: the cost of most requests is a substring search.
    """
    if not values:
        return None
    # Loops, not any() over a generator: half the cost, on every request.
    for value in values:
        for name in names:
            if name in value:
                break
        else:
            continue
        break
    else:
        return values if isinstance(values, list) else list(values)
    kept = []
    removed = False
    for value in values:
        for pair in value.split(b";"):
            pair = pair.strip()
            if not pair:
                continue
            found, equals, _ = pair.partition(b"=")
            if equals and found.rstrip() in names:
                removed = True
            else:
                kept.append(pair)
    if not removed:
        # A name only inside some value: nothing to take out, so no rewrite.
        return list(values)
    return [b"; ".join(kept)] if kept else None


def set_cookie(name: bytes, key: str, max_age: int, secure: bool) -> bytes:
    """The Set-Cookie value that hands out C{key}; C{Secure} only over TLS, where the browser would keep it."""
    value = b"%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax" % (name, key.encode("ascii"), max_age)
    return value + b"; Secure" if secure else value


# --- SILLYPROXY_STICKY ----------------------------------------------------------

_TCHAR_TEXT = "letters, digits and !#$%&'*+-.^_`|~"

_KINDS = ("off", "cookie", "header", "ip")
_NEEDS_NAME = "header needs a header name, as in header:X-User-Id"


def is_token(name: str | bytes) -> bool:
    """Whether C{name} is an RFC 9110 token, as header and cookie names must be."""
    if isinstance(name, str):
        if not name.isascii():
            return False
        name = name.encode("ascii")
    return bool(name) and not name.translate(None, TCHAR)


@dataclass(frozen=True)
class StickyMode:
    """
    What a user is known by (SILLYPROXY_STICKY): C{off} (each request
    draws afresh), C{cookie} (the proxy's cookie), C{header} (the value of
    request header C{header}, a lower-cased token; None in other modes) or
    C{ip} (the client's address).
    """

    kind: str
    header: bytes | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"sticky mode {self.kind!r} is not one of {', '.join(_KINDS)}")
        if (self.kind == "header") != (self.header is not None):
            raise ValueError("a header name goes with the header mode, and only with it")
        if self.header is not None and not (is_token(self.header) and self.header == self.header.lower()):
            raise ValueError(f"{self.header!r} is not a lower-case header name")

    @property
    def enabled(self) -> bool:
        """Whether requests are routed by a key at all."""
        return self.kind != "off"

    def describe(self) -> str:
        """What users are known by, for the start-up log: C{sticky by <this>}."""
        if self.header is not None:
            return f"request header {self.header.decode('ascii')}"
        return _DESCRIPTIONS[self.kind]

    def __str__(self) -> str:
        """The mode as SILLYPROXY_STICKY spells it."""
        return f"header:{self.header.decode('ascii')}" if self.header is not None else self.kind


_DESCRIPTIONS = {"off": "nothing (off)", "cookie": "the proxy's cookie", "ip": "client IP address"}

STICKY_OFF = StickyMode("off")


def parse_sticky(text: str) -> StickyMode:
    """
    Parse SILLYPROXY_STICKY: C{off}, C{cookie}, C{header:NAME} or C{ip}
    (case-insensitive, NAME kept lower-cased).

    @raise ValueError: with a short reason.
    """
    kind, colon, name = text.strip().partition(":")
    kind = kind.strip().lower()
    if kind == "header":
        name = name.strip()
        if not name:
            raise ValueError(_NEEDS_NAME)
        if not is_token(name):
            raise ValueError(f"{name!r} is not a header name ({_TCHAR_TEXT})")
        if name.lower() == "sillyproxy-color":
            # The proxy takes that header off every request (it carries
            # tester passes), so it could never be a key.
            raise ValueError("Sillyproxy-Color carries override passes and cannot be the sticky key")
        return StickyMode("header", name.lower().encode("ascii"))
    if colon or kind not in _KINDS:
        raise ValueError("must be off, cookie, header:NAME or ip")
    return StickyMode(kind)
