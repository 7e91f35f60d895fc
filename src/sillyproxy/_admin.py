"""The admin listener: /metrics, /healthz, /readyz and /status, apart from proxied traffic."""

from __future__ import annotations

import json
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from ._metrics import ProxyMetrics
from ._routing import Router
from ._site import ProxySite
from .override import make_pass

__all__ = ["AdminSite", "admin_resource"]


class _Answer(Resource):
    """A leaf that answers GET with what C{answer} returns: status, content type, body."""

    isLeaf = True

    def __init__(self, answer: Callable[[], tuple[int, bytes, bytes]]) -> None:
        super().__init__()
        self._answer = answer

    def render_GET(self, request: Request) -> bytes:
        status, content_type, body = self._answer()
        request.setResponseCode(status)
        request.setHeader(b"content-type", content_type)
        request.setHeader(b"cache-control", b"no-store")
        return body


_TEXT = b"text/plain; charset=utf-8"


def admin_resource(
    metrics: ProxyMetrics,
    router: Router,
    site: ProxySite,
    clock: Callable[[], float],
    version: str,
    listen: str,
    override_secret: bytes | None = None,
) -> Resource:
    """
    Build the admin tree.

      - C{/healthz}: 200 while the process is alive (liveness);
      - C{/readyz}: 200 when a colour can serve and the proxy is not
        draining, else 503; it turns 503 the moment a drain starts
        (readiness);
      - C{/metrics}: Prometheus text;
      - C{/status}: JSON with the version, uptime, listen endpoints (separated by spaces), and each
        colour's URL, weights, addresses and counts;
      - C{/override/COLOUR}: a tester's override pass for the colour, when
        C{override_secret} is set (404 otherwise, or for an unknown colour).
    """
    started = clock()

    def ready() -> tuple[int, bytes, bytes]:
        if site.draining:
            return 503, _TEXT, b"draining\n"
        if not any(router.effective_weights().values()):
            return 503, _TEXT, b"no colour can serve\n"
        return 200, _TEXT, b"ready\n"

    def describe() -> dict[str, object]:
        now = clock()
        effective = router.effective_weights()
        colors = {}
        for backend in router.backends:
            addresses = [
                {
                    "address": a.address,
                    "in_rotation": a.usable(now),
                    "passing_health_checks": a.passing_health_checks,
                    "ejected_for_seconds": round(a.ejected_for(now), 1),
                }
                for a in router.upstreams[backend.color].addresses
            ]
            colors[backend.color] = {
                "url": backend.url,
                "weight": backend.weight,
                "effective_weight": effective[backend.color],
                "health_check": backend.health_path,
                "addresses": addresses,
                "requests": metrics.requests_by_color.get(backend.color, 0),
                "upstream_errors": metrics.errors_by_color.get(backend.color, 0),
                "open_tunnels": metrics.open_tunnels.get(backend.color, 0),
            }
        return {
            "version": version,
            "uptime_seconds": round(now - started, 1),
            "listen": listen,
            "draining": site.draining,
            "open_connections": len(site.channels),
            "colors": colors,
        }

    def status() -> tuple[int, bytes, bytes]:
        return 200, b"application/json", json.dumps(describe(), indent=2).encode("utf-8") + b"\n"

    def prometheus() -> tuple[int, bytes, bytes]:
        # prometheus_client's own MetricsResource runs a WSGI app in a
        # thread; rendering the text here is quick and keeps the admin tree
        # testable in memory.
        return 200, CONTENT_TYPE_LATEST.encode("ascii"), generate_latest(metrics.registry)

    root = Resource()
    root.putChild(b"healthz", _Answer(lambda: (200, _TEXT, b"ok\n")))
    root.putChild(b"readyz", _Answer(ready))
    root.putChild(b"metrics", _Answer(prometheus))
    root.putChild(b"status", _Answer(status))
    root.putChild(b"override", _OverridePasses(router, override_secret))
    return root


class _OverridePasses(Resource):
    """C{/override/COLOUR}: the pass a tester presents to reach that colour."""

    isLeaf = True

    def __init__(self, router: Router, secret: bytes | None) -> None:
        super().__init__()
        self._router = router
        self._secret = secret

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", _TEXT)
        request.setHeader(b"cache-control", b"no-store")
        known = {b.color.lower(): b.color for b in self._router.backends}
        segments = request.postpath or []
        color = segments[0].decode("ascii", "replace").lower() if len(segments) == 1 else ""
        if self._secret is None or color not in known:
            request.setResponseCode(404)
            return b"no such override\n"
        return make_pass(self._secret, known[color]).encode("ascii") + b"\n"


class AdminSite(Site):
    """
    The admin listener's Site: it logs nothing per request (probes and
    scrapes come every few seconds, and would fill the log with lines
    nobody reads) and never shows a traceback.
    """

    noisy = False
    displayTracebacks = False

    def log(self, request: http.Request) -> None:
        pass
