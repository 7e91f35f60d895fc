"""
Tester override passes: `python -m sillyproxy.override green` prints the
pass that sends a request to green whatever green's weight.

A pass for colour C is C{c.} followed by the first 32 lower-case hex
characters of HMAC-SHA256(key=SILLYPROXY_OVERRIDE_SECRET, msg=c), c being
the colour's lower-case name.  It is presented as the request header
C{Sillyproxy-Color: PASS} or the cookie C{sillyproxy-color=PASS}.  A pass
proves only that its holder got it from someone with the secret; it names
its colour in clear so that a tester can read which one they hold.

Like sillyproxy.healthcheck, this imports only the standard library (and
the package's `__init__`, which imports nothing eagerly): a command-line
tool should not pay a second for Twisted to print one line.
"""

from __future__ import annotations

import hmac
import os
import sys

# Not typing.TYPE_CHECKING: importing typing would cost ~10 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence
    from typing import TextIO

__all__ = [
    "PASS_COOKIE",
    "PASS_HEADER",
    "SECRET_VARIABLE",
    "main",
    "make_pass",
    "parse_secret",
    "verify_pass",
]

# Lower-cased, as Twisted's Headers looks names up; cookie names are
# case-sensitive, and this one is lower-case.
PASS_HEADER = b"sillyproxy-color"
PASS_COOKIE = b"sillyproxy-color"
SECRET_VARIABLE = "SILLYPROXY_OVERRIDE_SECRET"

# Hex characters of the HMAC kept: 128 bits, beyond guessing.
_MAC_LENGTH = 32
_USAGE = "usage: python -m sillyproxy.override COLOUR"


def parse_secret(text: str | None) -> bytes | None:
    """
    A secret from the environment as bytes; None when unset, empty or only
    whitespace.  Surrounding whitespace is not part of it, so that a
    trailing newline from a secrets file cannot make one replica (or this
    command) disagree with another.  Bytes that were not UTF-8 come back as
    they were (os.environ decodes them with surrogateescape).
    """
    if text is None:
        return None
    stripped = text.strip()
    return stripped.encode("utf-8", "surrogateescape") if stripped else None


def _mac(secret: bytes, colour: str) -> str:
    return hmac.new(secret, colour.encode("utf-8"), "sha256").hexdigest()[:_MAC_LENGTH]


def make_pass(secret: bytes, colour: str) -> str:
    """The pass for C{colour}: its lower-case name, a dot, and 32 hex characters of its HMAC."""
    colour = colour.lower()
    return f"{colour}.{_mac(secret, colour)}"


def verify_pass(secret: bytes, presented: str | bytes, colours: Collection[str]) -> str | None:
    """
    The colour of C{colours} (as given there) that the pass C{presented}
    names, if the pass is valid; else None, whatever was presented.  The
    colour part is case-insensitive, the HMAC part is not, and it is
    compared in constant time.
    """
    if isinstance(presented, bytes):
        try:
            presented = presented.decode("ascii")
        except UnicodeDecodeError:
            return None
    elif not presented.isascii():
        return None
    named, dot, mac = presented.partition(".")
    if not dot:
        return None
    named = named.lower()
    for colour in colours:
        if colour.lower() == named:
            break
    else:
        # Colour names are not secret: only the HMAC needs constant time.
        return None
    return colour if hmac.compare_digest(mac, _mac(secret, named)) else None


def _is_colour_name(name: str) -> bool:
    # The configuration's rule (a letter, then letters, digits or _), without
    # importing re for one check.
    return name.isascii() and name[:1].isalpha() and name.replace("_", "").isalnum()


def main(argv: Sequence[str], environ: Mapping[str, str], out: TextIO, err: TextIO | None = None) -> int:
    """
    Print the pass for the colour named in C{argv} (the arguments, without
    the program's name) from SILLYPROXY_OVERRIDE_SECRET in C{environ}.

    @return: the exit status: 0, or 2 (with one line on C{err}, standard
        error by default) if the secret is unset or no colour is given.
    """
    if err is None:
        err = sys.stderr
    if list(argv) in (["-h"], ["--help"]):
        print(_USAGE, file=out)
        print(f"Print the override pass for COLOUR, from {SECRET_VARIABLE}.", file=out)
        return 0
    if len(argv) != 1:
        print(_USAGE, file=err)
        return 2
    colour = argv[0]
    if not _is_colour_name(colour):
        print(
            f"sillyproxy.override: {colour!r} is not a colour name (a letter followed by letters, digits or _)",
            file=err,
        )
        return 2
    secret = parse_secret(environ.get(SECRET_VARIABLE))
    if secret is None:
        print(
            f"sillyproxy.override: {SECRET_VARIABLE} is not set (it must hold the proxy's override secret)",
            file=err,
        )
        return 2
    print(make_pass(secret, colour), file=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:], os.environ, sys.stdout))
