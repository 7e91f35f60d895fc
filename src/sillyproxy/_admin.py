"""The admin listener: /metrics, /healthz, /readyz, /status and /history, apart from proxied traffic."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from ._dashboard import add_dashboard
from ._metrics import ProxyMetrics
from ._mirror import Mirror
from ._rollout import Rollout
from ._routing import Router
from ._site import ProxySite
from ._timestamps import rfc3339
from ._traffic import RecentTraffic
from .override import make_pass

__all__ = ["AdminSite", "OverridePasses", "admin_resource"]


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
    rollout: Rollout | None = None,
    traffic: RecentTraffic | None = None,
    mirrors: Sequence[Mirror] = (),
    rollback_healthz: bool = False,
) -> Resource:
    """
    Build the admin tree.

      - C{/healthz}: 200 while the process is alive (liveness); with
        C{rollback_healthz}, 503 C{rolled back: COLOUR} once a colour has
        been rolled back, so that the orchestrator rolls the proxy's own
        update back;
      - C{/readyz}: 200 when a colour can serve and the proxy is not
        draining, else 503; it turns 503 the moment a drain starts
        (readiness);
      - C{/metrics}: Prometheus text;
      - C{/status}: JSON with the version, uptime, listen endpoints (separated by spaces), and each
        colour's URL, weights, shares, ramp, rollback, addresses, counts,
        and its last 10 s (requests per second, error rate, p50 and p99);
      - C{/history}: each colour's requests per second and error rate for
        each second of the last five minutes, for the dashboard's charts;
      - C{/}: the live dashboard (its page, script and stylesheet);
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

    def health() -> tuple[int, bytes, bytes]:
        if rollback_healthz and rollout is not None and rollout.rolled_back:
            return 503, _TEXT, b"rolled back: " + ", ".join(rollout.rolled_back).encode("ascii")
        return 200, _TEXT, b"ok\n"

    mirrored = {mirror.color: mirror for mirror in mirrors}

    def describe() -> dict[str, object]:
        now = clock()
        effective = router.effective_weights()
        configured = (
            rollout.configured_weights(now)
            if rollout is not None
            else {b.color: b.weight for b in router.backends}
        )
        rolled_back: Mapping[str, str] = rollout.rolled_back if rollout is not None else {}
        summaries = (
            {color: t.summary(now) for color, t in traffic.colors.items()}
            if traffic is not None
            else {}
        )
        observed_total = sum(summary.requests for summary in summaries.values())
        colors = {}
        for backend in router.backends:
            color = backend.color
            addresses = [
                {
                    "address": a.address,
                    "in_rotation": a.usable(now),
                    "passing_health_checks": a.passing_health_checks,
                    "ejected_for_seconds": round(a.ejected_for(now), 1),
                }
                for a in router.upstreams[color].addresses
            ]
            summary = summaries.get(color)
            ramp = rollout.ramp_position(color, now) if rollout is not None else None
            mirror = mirrored.get(color)
            colors[color] = {
                "url": backend.url,
                "weight": backend.weight,
                "effective_weight": effective[color],
                "share": _fraction(effective[color], effective.values()),
                "configured_share": _fraction(configured[color], configured.values()),
                "observed_share": (
                    round(summary.requests / observed_total, 4)
                    if summary is not None and observed_total
                    else None
                ),
                "ramp": (
                    None
                    if ramp is None
                    else {
                        "step": ramp.step,
                        "steps": ramp.steps,
                        "percent": ramp.percent,
                        "next_step_at": (
                            rfc3339(ramp.next_step_at) if ramp.next_step_at is not None else None
                        ),
                    }
                ),
                "rolled_back": color in rolled_back,
                "rollback_reason": rolled_back.get(color),
                "mirror": None if mirror is None else {"percent": backend.mirror_percent},
                "requests_per_second": (
                    round(summary.requests_per_second, 2) if summary is not None else 0.0
                ),
                "error_rate": _rounded(summary.error_rate if summary is not None else None, 4),
                "p50_ms": _milliseconds(summary.percentile(0.5) if summary is not None else None),
                "p99_ms": _milliseconds(summary.percentile(0.99) if summary is not None else None),
                "health_check": backend.health_path,
                "addresses": addresses,
                "requests": metrics.requests_by_color.get(color, 0),
                "upstream_errors": metrics.errors_by_color.get(color, 0),
                "open_tunnels": metrics.open_tunnels.get(color, 0),
            }
        return {
            "version": version,
            "pid": os.getpid(),
            "time": rfc3339(now),
            "uptime_seconds": round(now - started, 1),
            "listen": listen,
            "draining": site.draining,
            "open_connections": len(site.channels),
            "colors": colors,
        }

    def history() -> tuple[int, bytes, bytes]:
        now = clock()
        colors: dict[str, object] = {}
        for color, recent in (traffic.colors.items() if traffic is not None else ()):
            requests, rates = recent.history(now)
            colors[color] = {
                "requests_per_second": requests,
                "error_rate": [_rounded(rate, 4) for rate in rates],
            }
        body = {"interval_seconds": 1, "end": rfc3339(int(now) - 1), "colors": colors}
        return 200, b"application/json", json.dumps(body).encode("utf-8") + b"\n"

    def status() -> tuple[int, bytes, bytes]:
        return 200, b"application/json", json.dumps(describe(), indent=2).encode("utf-8") + b"\n"

    def prometheus() -> tuple[int, bytes, bytes]:
        # prometheus_client's own MetricsResource runs a WSGI app in a
        # thread; rendering the text here is quick and keeps the admin tree
        # testable in memory.
        return 200, CONTENT_TYPE_LATEST.encode("ascii"), generate_latest(metrics.registry)

    root = Resource()
    root.putChild(b"healthz", _Answer(health))
    root.putChild(b"readyz", _Answer(ready))
    root.putChild(b"metrics", _Answer(prometheus))
    root.putChild(b"status", _Answer(status))
    root.putChild(b"history", _Answer(history))
    add_dashboard(root)
    root.putChild(
        b"override", OverridePasses([b.color for b in router.backends], override_secret)
    )
    return root


def _fraction(part: int, parts: Iterable[int]) -> float:
    total = sum(parts)
    return round(part / total, 6) if total else 0.0


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class OverridePasses(Resource):
    """C{/override/COLOUR}: the pass a tester presents to reach that colour."""

    isLeaf = True

    def __init__(self, colors: Sequence[str], secret: bytes | None) -> None:
        super().__init__()
        self._known = {color.lower(): color for color in colors}
        self._secret = secret

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", _TEXT)
        request.setHeader(b"cache-control", b"no-store")
        known = self._known
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
