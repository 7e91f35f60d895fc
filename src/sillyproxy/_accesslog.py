"""One line per proxied request: who asked for what, which colour served it, and how it went."""

from __future__ import annotations

from attrs import frozen
from twisted.logger import Logger

__all__ = ["AccessRecord", "format_access_line", "log_access"]

_log = Logger(namespace="sillyproxy.access")


@frozen
class AccessRecord:
    """The facts about one finished (or abandoned) request."""

    client: str
    method: bytes
    target: bytes
    # The colour that served the request, or "-" when none did.
    color: str
    status: int
    body_bytes: int
    duration: float
    # Why the request ended other than normally ("client closed", ...), or "".
    outcome: str = ""


def _text(raw: bytes) -> str:
    # Request lines are bytes from the network; keep any odd byte visible
    # rather than letting it break the log line.
    return raw.decode("ascii", "backslashreplace")


def format_access_line(record: AccessRecord) -> str:
    """Render a record as a plain-text log line."""
    line = (
        f"{record.client} {_text(record.method)} {_text(record.target)} "
        f"{record.color} {record.status} {record.body_bytes} "
        f"{record.duration * 1000:.1f}ms"
    )
    if record.outcome:
        line += f" ({record.outcome})"
    return line


def log_access(record: AccessRecord) -> None:
    """Emit C{record} through twisted.logger."""
    _log.info("{line}", line=format_access_line(record), access=record)
