"""
The private Twisted names sillyproxy relies on, other than the transports'
(L{sillyproxy._transport}) and the connection pool's (L{sillyproxy._pool}).

Each sits in one named function, whose docstring says what it assumes and
which Twisted releases it was checked against; C{tests/test_compat.py} pins
each assumption, so a Twisted release that breaks one fails that test by
name rather than corrupting traffic.  Checked against Twisted 25.5.0 to
26.10.0.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.web._newclient import ParseError
from twisted.web.http_headers import Headers

__all__ = ["ParseError", "clear_exit_signal", "copy_canonical_headers"]


def copy_canonical_headers(headers: Headers, pairs: Iterable[tuple[bytes, list[bytes]]]) -> None:
    """
    Add C{pairs} to C{headers} without checking or converting them again.

    The names must already be in the canonical case Twisted keeps (as read
    from another L{Headers}) and the values free of line breaks (read from
    another L{Headers}, or made by L{sillyproxy._headers}).  setRawHeaders
    checks and converts every name and value, which is a noticeable share
    of a proxied request when every header passes through twice.

    Relies on C{Headers._rawHeaders}: a dict from the canonical name to a
    list of values.
    """
    headers._rawHeaders.update(pairs)


def clear_exit_signal(reactor: object) -> bool:
    """
    Make twistd and twist exit 0 after a stop that a signal asked for;
    return whether there was one to clear.

    Both runners end by re-raising the signal that stopped the reactor
    (exit status 143 for SIGTERM), which reads as a crash to scripts and
    supervisors even when the proxy drained cleanly.

    Relies on the reactor's C{_exitSignal} attribute, which its signal
    handlers set and both runners read once the reactor has stopped.
    """
    if getattr(reactor, "_exitSignal", None) is None:
        return False
    reactor._exitSignal = None  # type: ignore[attr-defined]
    return True
