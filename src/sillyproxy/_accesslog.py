"""One line per proxied request, as text or JSON, written in batches straight to standard output."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import NamedTuple

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ._timestamps import log_timestamp, rfc3339

_log = Logger(namespace="sillyproxy.access")

__all__ = [
    "AccessLog",
    "AccessRecord",
    "format_access_json",
    "format_access_line",
]


class AccessRecord(NamedTuple):
    """The facts about one finished (or abandoned) request."""

    time: float
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
    # The backend address:port the last attempt was sent to, or "-".
    upstream: str = "-"
    # The request's Host and User-Agent headers, "-" when absent.
    host: str = "-"
    user_agent: str = "-"
    request_id: str = "-"


def _text(raw: bytes) -> str:
    # Request lines are bytes from the network; keep any odd byte visible
    # rather than letting it break the log line.
    return raw.decode("ascii", "backslashreplace")


def format_access_line(record: AccessRecord) -> str:
    """Render a record as the text of a plain log line (no timestamp)."""
    line = (
        f"{record.client} {_text(record.method)} {_text(record.target)} "
        f"{record.color} {record.status} {record.body_bytes} "
        f"{record.duration * 1000:.1f}ms"
    )
    if record.outcome:
        line += f" ({record.outcome})"
    return line


def format_access_json(record: AccessRecord) -> str:
    """Render a record as one JSON object."""
    return json.dumps(
        {
            "time": rfc3339(record.time),
            "client": record.client,
            "method": _text(record.method),
            "path": _text(record.target),
            "status": record.status,
            "color": record.color,
            "bytes": record.body_bytes,
            "duration_ms": round(record.duration * 1000, 3),
            "reason": record.outcome or "weighted",
            "upstream": record.upstream,
            "host": record.host,
            "user_agent": record.user_agent,
            "request_id": record.request_id,
        },
        separators=(",", ":"),
    )


class AccessLog:
    """
    Write access records to a file descriptor, batching the lines of one
    reactor turn into a single write.

    Formatting and writing every line through twisted.logger cost about an
    eighth of the proxy's time per request under load; this costs a string
    format and, per turn of the reactor, one write.

    @param mode: C{text}, C{json} or C{off}.
    @param write: takes the bytes to write; by default, to standard output.
    """

    def __init__(
        self,
        clock: IReactorTime,
        mode: str = "text",
        write: Callable[[bytes], object] | None = None,
    ) -> None:
        self._clock = clock
        self._mode = mode
        self._write = write if write is not None else _write_stdout
        self._pending: list[str] = []

    def __call__(self, record: AccessRecord) -> None:
        if self._mode == "off":
            return
        if self._mode == "json":
            line = format_access_json(record)
        else:
            line = f"{log_timestamp(record.time)} [sillyproxy.access] {format_access_line(record)}"
        if not self._pending:
            self._clock.callLater(0, self.flush)
        self._pending.append(line)

    def flush(self) -> None:
        """Write every pending line now."""
        if self._pending:
            lines, self._pending = self._pending, []
            try:
                for chunk in _whole_lines(lines):
                    self._write(chunk)
            except OSError as e:
                # Nobody is reading the log (a closed pipe, a full disk):
                # say so once and stop, rather than fail every request.
                self._mode = "off"
                _log.error("access log disabled: writing it failed: {error}", error=e)


# A write of at most this much to a pipe is atomic (POSIX PIPE_BUF, 4096 on
# Linux): the workers of one replica share standard output, and must never
# interleave mid-line.
_ATOMIC_WRITE = 4096


def _whole_lines(lines: list[str]) -> Iterator[bytes]:
    """The lines, encoded, in writes of whole lines of at most 4 KiB (a longer line alone)."""
    chunk: list[bytes] = []
    size = 0
    for line in lines:
        data = line.encode("utf-8", "backslashreplace") + b"\n"
        if chunk and size + len(data) > _ATOMIC_WRITE:
            yield b"".join(chunk)
            chunk, size = [], 0
        chunk.append(data)
        size += len(data)
    if chunk:
        yield b"".join(chunk)


def _write_stdout(data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(1, view)
        view = view[written:]
