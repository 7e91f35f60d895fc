"""The Klein app: every path answers with the request's colour and this host's name."""

from __future__ import annotations

from html import escape

from klein import Klein
from twisted.web.iweb import IRequest

__all__ = ["make_app"]


def make_app(hostname: str, v2: bool) -> Klein:
    """
    Build the demo app.

    @param hostname: the name to report, as the walkthrough's container id.
    @param v2: answer in HTML, the walkthrough's "new version", rather than
        plain text.
    """
    app = Klein()

    @app.route("/", branch=True)
    def identify(request: IRequest) -> str:
        raw = request.getHeader(b"color")
        color = raw.decode("utf-8", "replace") if raw else "unknown"
        if v2:
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            # The Color header comes from the client side: never let it
            # inject markup.
            return f"<h1>{escape(hostname)} ({escape(color)})</h1>\n"
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return f"{color} {hostname}\n"

    return app
