"""
The Klein app: every path answers with the request's colour and this host's
name, except /ws, a WebSocket that echoes each message prefixed with the colour.
With an error rate, that fraction of the ordinary requests (not /ws) is
answered 500 instead, to show a bad release being rolled back.
"""

from __future__ import annotations

import random as _random
from html import escape
from typing import Callable, Union

from klein import Klein
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from ._ws import MAX_MESSAGE, color_of, echo_resource

__all__ = ["make_app"]


def _rate_text(rate: float) -> str:
    """The rate as the setting would be written: 0.5, 1, 0.05."""
    text = repr(rate)
    return text[:-2] if text.endswith(".0") else text


def make_app(
    hostname: str,
    v2: bool,
    *,
    max_message: int = MAX_MESSAGE,
    error_rate: float = 0.0,
    random: Callable[[], float] = _random.random,
) -> Klein:
    """
    Build the demo app.

    @param hostname: the name to report, as the walkthrough's container id.
    @param v2: answer in HTML, the walkthrough's "new version", rather than
        plain text.
    @param max_message: the largest WebSocket message /ws echoes, in bytes or
        characters; a larger one closes the socket with 1009.
    @param error_rate: the fraction, from 0 to 1, of ordinary requests (any
        path but /ws and /healthz) answered 500 (MYAPP_ERROR_RATE).
    @param random: draws a number in [0, 1) per ordinary request, when
        C{error_rate} is above 0; a request whose draw is below
        C{error_rate} fails.
    """
    app = Klein()
    echo = echo_resource(max_message)
    injected = f"injected error (MYAPP_ERROR_RATE={_rate_text(error_rate)})"

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
        # /healthz is what the image's HEALTHCHECK asks: a release that
        # answers errors is still alive, and must be judged by the proxy's
        # rollback, not restarted by its orchestrator.
        if error_rate > 0 and request.path != b"/healthz" and random() < error_rate:
            request.setResponseCode(500)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return f"{color} {hostname}: {injected}\n"
        if v2:
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            # The Color header comes from the client side: never let it
            # inject markup.
            return f"<h1>{escape(hostname)} ({escape(color)})</h1>\n"
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return f"{color} {hostname}\n"

    return app
