"""twistd's log observer for sillyproxy: text, or one JSON object per line when SILLYPROXY_ACCESS_LOG=json."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from twisted.logger import ILogObserver, LogEvent, formatEvent, textFileLogObserver
from zope.interface import implementer

from ._timestamps import rfc3339

__all__ = ["JSONLineObserver", "observer"]


@implementer(ILogObserver)
class JSONLineObserver:
    """Writes each event as one JSON object: time, level, namespace, message (and error)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def __call__(self, event: LogEvent) -> None:
        level = event.get("log_level")
        record: dict[str, object] = {
            "time": rfc3339(event.get("log_time") or time.time()),
            "level": getattr(level, "name", "info"),
            "namespace": event.get("log_namespace", "-"),
            "message": formatEvent(event),
        }
        failure = event.get("log_failure")
        if failure is not None:
            record["error"] = failure.getErrorMessage()
            record["traceback"] = failure.getTraceback()
        self._out.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._out.flush()


def observer(environ: Mapping[str, str] | None = None, out: TextIO | None = None) -> ILogObserver:
    """
    The observer for C{twistd --logger=sillyproxy.logs.observer}: JSON lines
    when SILLYPROXY_ACCESS_LOG is C{json}, twistd's usual text otherwise.
    Both go to standard output, where the access log goes too.
    """
    environ = os.environ if environ is None else environ
    # twistd replaces sys.stdout with a logging file; writing the log there
    # would loop, so use the real one.
    out = out if out is not None else sys.__stdout__
    if out is None:
        raise RuntimeError("no standard output to log to")
    if environ.get("SILLYPROXY_ACCESS_LOG", "").strip().lower() == "json":
        return JSONLineObserver(out)
    return textFileLogObserver(out)
