"""Prometheus metrics for the proxy, kept in an injected registry."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ._accesslog import AccessRecord
from ._routing import Router

__all__ = ["ProxyMetrics"]

# Labels stay low-cardinality: a method outside this set counts as "other".
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}
)
# Proxy latencies: sub-millisecond for a local backend, up to the 60 s
# response timeout.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class _StateCollector(Collector):
    """Metrics read from the proxy's state at scrape time, not counted."""

    def __init__(
        self,
        router: Router,
        open_connections: Callable[[], dict[str, int]],
        clock: Callable[[], float],
    ) -> None:
        self._router = router
        self._open_connections = open_connections
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        weight = GaugeMetricFamily(
            "sillyproxy_color_weight", "Configured weight of each colour.", labels=["color"]
        )
        effective = GaugeMetricFamily(
            "sillyproxy_color_effective_weight",
            "Weight of each colour after health: 0 while it cannot serve.",
            labels=["color"],
        )
        up = GaugeMetricFamily(
            "sillyproxy_upstream_up",
            "1 if a backend address is in rotation, 0 if ejected or failing health checks.",
            labels=["color", "address"],
        )
        effective_weights = self._router.effective_weights()
        now = self._clock()
        for backend in self._router.backends:
            weight.add_metric([backend.color], backend.weight)
            effective.add_metric([backend.color], effective_weights[backend.color])
            for address in getattr(self._router.agents[backend.color], "addresses", ()):
                up.add_metric([backend.color, address.address], 1 if address.usable(now) else 0)
        connections = GaugeMetricFamily(
            "sillyproxy_open_connections",
            "Open connections: from clients, and idle pooled ones to backends.",
            labels=["side"],
        )
        for side, count in self._open_connections().items():
            connections.add_metric([side], count)
        yield from (weight, effective, up, connections)


class ProxyMetrics:
    """
    What the proxy counts, for /metrics and /status.

    @param registry: where the metrics live; tests pass a fresh one.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        router: Router,
        version: str,
        open_connections: Callable[[], dict[str, int]],
        clock: Callable[[], float],
    ) -> None:
        self.registry = registry
        self._requests = Counter(
            "sillyproxy_requests",
            "Requests answered, by colour, status code and method.",
            ["color", "code", "method"],
            registry=registry,
        )
        self._duration = Histogram(
            "sillyproxy_request_duration_seconds",
            "Time from request to the end of the response, by colour.",
            ["color"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self._errors = Counter(
            "sillyproxy_upstream_errors",
            "Failed attempts to get a response from a backend, by colour and reason.",
            ["color", "reason"],
            registry=registry,
        )
        self._inflight = Gauge(
            "sillyproxy_inflight_requests",
            "Requests being forwarded now, by colour.",
            ["color"],
            registry=registry,
        )
        Gauge("sillyproxy_build_info", "The running version.", ["version"], registry=registry).labels(
            version
        ).set(1)
        registry.register(_StateCollector(router, open_connections, clock))
        # Labelled children are looked up once; labels() costs on every call.
        self._children: dict[tuple[str, ...], object] = {}
        self.requests_by_color: dict[str, int] = {}
        self.errors_by_color: dict[str, int] = {}
        for backend in router.backends:
            self._inflight.labels(backend.color)
            self._duration.labels(backend.color)

    def _child(self, metric: object, *labels: str):  # type: ignore[no-untyped-def]
        key = (id(metric), *labels)
        child = self._children.get(key)  # type: ignore[arg-type]
        if child is None:
            child = self._children[key] = metric.labels(*labels)  # type: ignore[attr-defined,index]
        return child

    def request_started(self, color: str) -> None:
        self._child(self._inflight, color).inc()

    def request_ended(self, color: str) -> None:
        self._child(self._inflight, color).dec()

    def upstream_failed(self, color: str, reason: str) -> None:
        self._child(self._errors, color, reason).inc()
        self.errors_by_color[color] = self.errors_by_color.get(color, 0) + 1

    def observe(self, record: AccessRecord) -> None:
        """Count a finished request (called with each access record)."""
        method = record.method.decode("ascii", "replace").upper()
        if method not in _METHODS:
            method = "other"
        self._child(self._requests, record.color, str(record.status), method).inc()
        self._child(self._duration, record.color).observe(record.duration)
        self.requests_by_color[record.color] = self.requests_by_color.get(record.color, 0) + 1
