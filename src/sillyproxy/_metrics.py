"""Prometheus metrics for the proxy, kept in an injected registry."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from itertools import accumulate

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, Metric

from ._accesslog import AccessRecord
from ._mirror import Mirror
from ._routing import Router

__all__ = ["ProxyMetrics", "registry_with_process_metrics"]

# Labels stay low-cardinality: a method outside this set counts as "other".
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}
)
# The label of each method as clients usually send it, without decoding it.
_METHOD_LABELS = {method.encode("ascii"): method for method in _METHODS}
# Proxy latencies: sub-millisecond for a local backend, up to the 60 s
# response timeout.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def registry_with_process_metrics() -> CollectorRegistry:
    """
    A new registry with prometheus_client's standard collectors: process_*
    (CPU, memory, open files), python_gc_* and python_info, as every
    Python exporter has them.
    """
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def _counter(
    name: str, documentation: str, labels: list[str], counts: Mapping[tuple[str, str], int] | Mapping[tuple[str, str, str], int]
) -> CounterMetricFamily:
    """A counter family with one sample per label tuple in C{counts}."""
    family = CounterMetricFamily(name, documentation, labels=labels)
    for values, count in counts.items():
        family.add_metric(list(values), count)
    return family


class _StateCollector(Collector):
    """Metrics read from the proxy's state at scrape time, not counted."""

    def __init__(
        self,
        router: Router,
        open_connections: Callable[[], dict[str, int]],
        clock: Callable[[], float],
        rolled_back: Collection[str],
    ) -> None:
        self._router = router
        self._open_connections = open_connections
        self._clock = clock
        self._rolled_back = rolled_back

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
        share = GaugeMetricFamily(
            "sillyproxy_color_share",
            "Fraction of new traffic each colour gets now, after ramp, rollback and health.",
            labels=["color"],
        )
        rolled_back = GaugeMetricFamily(
            "sillyproxy_rolled_back",
            "1 once a colour has been rolled back (until the process restarts), else 0.",
            labels=["color"],
        )
        effective_weights = self._router.effective_weights()
        total = sum(effective_weights.values())
        now = self._clock()
        for backend in self._router.backends:
            weight.add_metric([backend.color], backend.weight)
            effective.add_metric([backend.color], effective_weights[backend.color])
            share.add_metric(
                [backend.color], effective_weights[backend.color] / total if total else 0.0
            )
            rolled_back.add_metric([backend.color], 1 if backend.color in self._rolled_back else 0)
            for address in self._router.upstreams[backend.color].addresses:
                up.add_metric([backend.color, address.address], 1 if address.usable(now) else 0)
        connections = GaugeMetricFamily(
            "sillyproxy_open_connections",
            "Open connections: from clients, and idle pooled ones to backends.",
            labels=["side"],
        )
        for side, count in self._open_connections().items():
            connections.add_metric([side], count)
        yield from (weight, effective, share, rolled_back, up, connections)


class ProxyMetrics(Collector):
    """
    What the proxy counts, for /metrics and /status.

    The hot path only bumps plain integers; prometheus_client's own metric
    objects take a lock and look up labels on every update, which cost more
    per request than the rest of the bookkeeping together.  The families
    are built from these counts when /metrics is scraped.

    @param registry: where the metrics are registered; tests pass a fresh one.
    @param rolled_back: the colours rolled back so far (a live view).
    @param mirrors: the mirrored colours, whose copies are counted.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        router: Router,
        version: str,
        open_connections: Callable[[], dict[str, int]],
        clock: Callable[[], float],
        rolled_back: Collection[str] = (),
        mirrors: Sequence[Mirror] = (),
    ) -> None:
        self.registry = registry
        self._mirrors = tuple(mirrors)
        self._version = version
        self._requests: dict[tuple[str, str, str], int] = {}
        self._errors: dict[tuple[str, str], int] = {}
        self._retries: dict[tuple[str, str], int] = {}
        self._inflight: dict[str, int] = {b.color: 0 for b in router.backends}
        self.open_tunnels: dict[str, int] = {b.color: 0 for b in router.backends}
        self._override_rejected = 0
        # Per colour: a count per bucket (the last for +Inf) and the sum.
        self._durations: dict[str, tuple[list[int], list[float]]] = {
            b.color: ([0] * (len(_BUCKETS) + 1), [0.0]) for b in router.backends
        }
        self.requests_by_color: dict[str, int] = {}
        self.errors_by_color: dict[str, int] = {}
        registry.register(self)
        registry.register(_StateCollector(router, open_connections, clock, rolled_back))

    def request_started(self, color: str) -> None:
        self._inflight[color] = self._inflight.get(color, 0) + 1

    def request_ended(self, color: str) -> None:
        self._inflight[color] -= 1

    def override_rejected(self) -> None:
        """A request came with an override pass that did not verify."""
        self._override_rejected += 1

    def tunnel_opened(self, color: str) -> None:
        self.open_tunnels[color] = self.open_tunnels.get(color, 0) + 1

    def tunnel_closed(self, color: str) -> None:
        self.open_tunnels[color] -= 1

    def upstream_failed(self, color: str, reason: str) -> None:
        key = (color, reason)
        self._errors[key] = self._errors.get(key, 0) + 1
        self.errors_by_color[color] = self.errors_by_color.get(color, 0) + 1

    def retried(self, from_color: str, to_color: str) -> None:
        """A request failed on C{from_color} before any answer and was sent to C{to_color}."""
        key = (from_color, to_color)
        self._retries[key] = self._retries.get(key, 0) + 1

    def observe(self, record: AccessRecord) -> None:
        """Count a finished request (called with each access record)."""
        method = _METHOD_LABELS.get(record.method)
        if method is None:
            method = record.method.decode("ascii", "replace").upper()
            if method not in _METHODS:
                method = "other"
        # A request no colour served (refused, or no backend) counts as "none".
        color = record.color if record.color != "-" else "none"
        key = (color, str(record.status), method)
        self._requests[key] = self._requests.get(key, 0) + 1
        self.requests_by_color[color] = self.requests_by_color.get(color, 0) + 1
        if record.status == 101:
            # A tunnel's duration is how long a socket stayed open, not how
            # long a request took: it would swamp the histogram.
            return
        durations = self._durations.get(color)
        if durations is None:
            durations = self._durations[color] = ([0] * (len(_BUCKETS) + 1), [0.0])
        counts, total = durations
        counts[bisect_left(_BUCKETS, record.duration)] += 1
        total[0] += record.duration

    def collect(self) -> Iterator[Metric]:
        requests = _counter(
            "sillyproxy_requests",
            "Requests answered, by colour, status code and method.",
            ["color", "code", "method"],
            self._requests,
        )
        errors = _counter(
            "sillyproxy_upstream_errors",
            "Failed attempts to get a response from a backend, by colour and reason.",
            ["color", "reason"],
            self._errors,
        )
        retries = _counter(
            "sillyproxy_retries",
            "Requests whose attempt on one colour failed before any answer and were sent to another.",
            ["from_color", "to_color"],
            self._retries,
        )
        inflight = GaugeMetricFamily(
            "sillyproxy_inflight_requests", "Requests being forwarded now, by colour.", labels=["color"]
        )
        for color, count in self._inflight.items():
            inflight.add_metric([color], count)
        tunnels = GaugeMetricFamily(
            "sillyproxy_open_tunnels",
            "Upgrade tunnels (WebSocket and the like) open now, by colour.",
            labels=["color"],
        )
        for color, count in self.open_tunnels.items():
            tunnels.add_metric([color], count)
        durations = HistogramMetricFamily(
            "sillyproxy_request_duration_seconds",
            "Time from request to the end of the response, by colour.",
            labels=["color"],
        )
        for color, (counts, total) in self._durations.items():
            cumulative = list(accumulate(counts))
            buckets = [(str(le), n) for le, n in zip(_BUCKETS, cumulative)]
            buckets.append(("+Inf", cumulative[-1]))
            durations.add_metric([color], buckets, sum_value=total[0])
        build = GaugeMetricFamily("sillyproxy_build_info", "The running version.", labels=["version"])
        build.add_metric([self._version], 1)
        rejected = CounterMetricFamily(
            "sillyproxy_override_rejected",
            "Requests whose override pass did not verify (and were routed as usual).",
        )
        rejected.add_metric([], self._override_rejected)
        mirrored = CounterMetricFamily(
            "sillyproxy_mirrored_requests",
            "Copies of requests for a mirrored colour, by outcome: sent (answered), dropped "
            "(too many in flight), too_large (body over 1 MiB) or failed.",
            labels=["color", "outcome"],
        )
        for mirror in self._mirrors:
            for outcome, count in mirror.counts.items():
                mirrored.add_metric([mirror.color, outcome], count)
        yield from (
            requests,
            errors,
            retries,
            inflight,
            tunnels,
            rejected,
            mirrored,
            durations,
            build,
        )
