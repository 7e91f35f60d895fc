"""
The admin listener's live dashboard: C{/} is a page that polls C{/status}
(and reads C{/history} once) from the same origin and draws each colour's
share, ramp, rollback, latency and traffic.

The page is three static files in the package (C{dashboard/}), read once
with importlib.resources so they work from a wheel as from a checkout. They
hold no inline script or style, so the strict C{Content-Security-Policy}
below applies to all of them: the page can only load and fetch from the
admin listener itself.
"""

from __future__ import annotations

from importlib.resources import files

from twisted.web.iweb import IRequest
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

__all__ = ["add_dashboard"]

# The page and its assets come from this origin only, and so does every
# fetch the script makes; nothing inline runs. The admin listener serves no
# third-party content, so nothing here needs loosening.
_CSP = b"default-src 'self'"

# (path segment, file in the package's dashboard/ folder, content type)
_ASSETS = [
    (b"", "index.html", b"text/html; charset=utf-8"),
    (b"dashboard.js", "dashboard.js", b"text/javascript; charset=utf-8"),
    (b"dashboard.css", "dashboard.css", b"text/css; charset=utf-8"),
]

_ALLOWED = b"GET, HEAD"


class _Asset(Resource):
    """
    One static file, answered to GET and HEAD; any other method is a 405.

    Not a leaf: a longer path under it (C{/dashboard.js/x}, C{//x}) finds
    no child and is a 404 rather than the same file again.
    """

    def __init__(self, body: bytes, content_type: bytes) -> None:
        super().__init__()
        self._body = body
        self._content_type = content_type

    def getChild(self, path: bytes, request: IRequest) -> IResource:
        # Resource's own 404 page is deprecated (it does not escape HTML).
        return notFound()

    def render(self, request: Request) -> bytes:
        # Headers first, so that the 405 below carries them too.
        request.setHeader(b"content-security-policy", _CSP)
        request.setHeader(b"x-content-type-options", b"nosniff")
        # The files change only with a new version of the proxy, but an
        # operator who upgrades it should see the new page at once, and the
        # files are small: no caching.
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"referrer-policy", b"no-referrer")
        if request.method == b"GET":
            request.setHeader(b"content-type", self._content_type)
            return self._body
        if request.method == b"HEAD":
            request.setHeader(b"content-type", self._content_type)
            # Twisted fills in Content-Length only for a body it sends; an
            # empty one keeps it from logging that it ate a HEAD body.
            request.setHeader(b"content-length", b"%d" % len(self._body))
            return b""
        # Twisted's own answer to an unknown method is a 501 for methods it
        # has never heard of, with an HTML page; one plain 405 for all is
        # simpler for a client to reason about.
        request.setResponseCode(405)
        request.setHeader(b"allow", _ALLOWED)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"method not allowed\n"


def add_dashboard(root: Resource) -> None:
    """
    Serve the dashboard from C{root}: C{/} (the page), C{/dashboard.js} and
    C{/dashboard.css}.

    twisted.web resolves C{GET /} to C{root}'s child named C{b""} (the path
    C{/} splits into one empty segment), so the page is that child.
    """
    folder = files("sillyproxy") / "dashboard"
    for segment, name, content_type in _ASSETS:
        # Read once: the files are small, and this keeps each request off
        # the disk.
        root.putChild(segment, _Asset((folder / name).read_bytes(), content_type))
