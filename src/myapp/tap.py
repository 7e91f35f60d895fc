"""The twistd plugin for myapp, the demo backend."""

from __future__ import annotations

import math
import os
import random as _random
import socket
import sys
from collections.abc import Mapping
from typing import Callable, TextIO

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService
from twisted.internet.endpoints import serverFromString
from twisted.python import usage
from twisted.web.server import Site

from ._app import make_app

__all__ = ["Options", "makeService", "parse_error_rate"]


def parse_error_rate(text: str) -> float:
    """
    MYAPP_ERROR_RATE's value as a fraction from 0 to 1; blank means unset (0).

    @raise ValueError: with the reason, if it is not a number from 0 to 1.
    """
    if not text.strip():
        return 0.0
    try:
        rate = float(text)
    except ValueError:
        raise ValueError("not a number") from None
    if math.isnan(rate):
        raise ValueError("not a number")
    if not 0.0 <= rate <= 1.0:
        raise ValueError("must be a fraction from 0 to 1")
    return rate


class Options(usage.Options):
    synopsis = "[--listen ENDPOINT]"
    longdesc = (
        "Serve the demo backend: plain text '<color> <hostname>', or HTML when "
        "env V2 is set to a non-empty value; /ws is a WebSocket that echoes each "
        "message prefixed '<color>: '. Env MYAPP_ERROR_RATE (a fraction from 0 "
        "to 1, default 0) answers that share of requests, /ws aside, with 500."
    )
    optParameters = [
        ["listen", "l", "tcp:8080", "Server endpoint to listen on."],
    ]

    def __init__(self, environ: Mapping[str, str] | None = None, stderr: TextIO | None = None) -> None:
        super().__init__()
        self.environ = os.environ if environ is None else environ
        self._stderr = stderr

    def postOptions(self) -> None:
        from twisted.internet import reactor

        try:
            serverFromString(reactor, self["listen"])
        except Exception as e:
            raise usage.UsageError(f"--listen={self['listen']!r}: not a server endpoint ({e})")
        text = self.environ.get("MYAPP_ERROR_RATE", "")
        try:
            self["error_rate"] = parse_error_rate(text)
        except ValueError as e:
            # As sillyproxy does: not a UsageError, which twistd would bury
            # under its help text; name the variable, its value and why.
            stderr = self._stderr if self._stderr is not None else sys.stderr
            stderr.write("myapp: invalid configuration, not starting:\n")
            stderr.write(f"  MYAPP_ERROR_RATE={text!r}: {e}\n")
            stderr.flush()
            raise SystemExit(2) from None


def makeService(options: Options, random: Callable[[], float] = _random.random) -> IService:
    """Build myapp from parsed options; C{random} draws which requests fail at MYAPP_ERROR_RATE."""
    from twisted.internet import reactor

    app = make_app(
        socket.gethostname(),
        v2=bool(options.environ.get("V2")),
        error_rate=options["error_rate"],
        random=random,
    )
    return StreamServerEndpointService(
        serverFromString(reactor, options["listen"]), Site(app.resource())
    )
