"""
The Klein app: every path answers with the request's colour and this host's
name, except /ws, a WebSocket that echoes each message prefixed with the colour.
"""

from __future__ import annotations

from html import escape
from typing import Union

from klein import Klein
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from ._ws import MAX_MESSAGE, color_of, echo_resource

__all__ = ["make_app"]


def make_app(hostname: str, v2: bool, *, max_message: int = MAX_MESSAGE) -> Klein:
    """
    Build the demo app.

    @param hostname: the name to report, as the walkthrough's container id.
    @param v2: answer in HTML, the walkthrough's "new version", rather than
        plain text.
    @param max_message: the largest WebSocket message /ws echoes, in bytes or
        characters; a larger one closes the socket with 1009.
    """
    app = Klein()
    echo = echo_resource(max_message)

    @app.route("/ws")
    def websocket(request: IRequest) -> Union[IResource, str]:
        upgrade = request.getHeader(b"upgrade") or b""
        if b"websocket" in [token.strip().lower() for token in upgrade.split(b",")]:
            # A malformed handshake gets Twisted's 400.
            return echo
        # Not a WebSocket handshake at all: say what this is.
        request.setResponseCode(426, b"Upgrade Required")
        request.setHeader(b"upgrade", b"websocket")
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        color, _ = color_of(request)
        return (
            f"{color} {hostname}: /ws is a WebSocket echo; "
            f"connect with a WebSocket client\n"
        )

    @app.route("/", branch=True)
    def identify(request: IRequest) -> str:
        color, _ = color_of(request)
        if v2:
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            # The Color header comes from the client side: never let it
            # inject markup.
            return f"<h1>{escape(hostname)} ({escape(color)})</h1>\n"
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return f"{color} {hostname}\n"

    return app
