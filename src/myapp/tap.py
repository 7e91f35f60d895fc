"""The twistd plugin for myapp, the demo backend."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService
from twisted.internet.endpoints import serverFromString
from twisted.python import usage
from twisted.web.server import Site

from ._app import make_app

__all__ = ["Options", "makeService"]


class Options(usage.Options):
    synopsis = "[--listen ENDPOINT]"
    longdesc = (
        "Serve the demo backend: plain text '<color> <hostname>', or HTML when "
        "env V2 is set to a non-empty value; /ws is a WebSocket that echoes each "
        "message prefixed '<color>: '."
    )
    optParameters = [
        ["listen", "l", "tcp:8080", "Server endpoint to listen on."],
    ]

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.environ = os.environ if environ is None else environ

    def postOptions(self) -> None:
        from twisted.internet import reactor

        try:
            serverFromString(reactor, self["listen"])
        except Exception as e:
            raise usage.UsageError(f"--listen={self['listen']!r}: not a server endpoint ({e})")


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    app = make_app(socket.gethostname(), v2=bool(options.environ.get("V2")))
    return StreamServerEndpointService(
        serverFromString(reactor, options["listen"]), Site(app.resource())
    )
