"""
One admin view over several workers: their /metrics, /status and /history
merged into what a single process would report.

prometheus_client's multiprocess mode is not used: it needs its own metric
objects (a lock and a file-backed value per update), where the proxy counts
in plain integers on the hot path and builds the families only when
scraped.  Each worker's exposition is read and merged instead: counters and
histograms summed, gauges summed, or taken by the rule their meaning asks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.metrics_core import Metric

__all__ = ["merge_history", "merge_metrics", "merge_status"]

# Gauges that count things in each worker: the replica's value is the sum.
_SUMMED_GAUGES = frozenset(
    {
        "sillyproxy_inflight_requests",
        "sillyproxy_open_tunnels",
        "sillyproxy_open_connections",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
    }
)
# Rolled back anywhere is rolled back; an address down in any worker is down.
_MAX_GAUGES = frozenset({"sillyproxy_rolled_back"})
_MIN_GAUGES = frozenset({"sillyproxy_upstream_up"})


class _Merged(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def merge_metrics(texts: Sequence[str], retired: Sequence[str] = ()) -> bytes:
    """
    The Prometheus text of several workers' expositions, merged into one.

    @param retired: the last expositions of workers that have exited: their
        counters and histograms still count (a replica's counters must not
        go back when a worker is replaced, or Prometheus sees a reset), and
        their gauges no longer do.
    """
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    sources = [(text, False) for text in retired] + [(text, True) for text in texts]
    for text, alive in sources:
        for family in text_string_to_metric_families(text):
            if not alive and family.type in ("gauge", "info", "stateset", "unknown"):
                continue
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(family.name, family.documentation, family.type)
                values[family.name] = {}
            samples = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in samples:
                    samples[key] = sample.value
                elif family.type != "gauge" or family.name in _SUMMED_GAUGES:
                    samples[key] += sample.value
                elif family.name in _MAX_GAUGES:
                    samples[key] = max(samples[key], sample.value)
                elif family.name in _MIN_GAUGES:
                    samples[key] = min(samples[key], sample.value)
    for name, family in families.items():
        family.samples = [Sample(n, dict(labels), value) for (n, labels), value in values[name].items()]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(list(families.values())))
    return generate_latest(registry)


def _weighted(values: Sequence[tuple[float | None, float]]) -> float | None:
    """The mean of the known values, weighted."""
    known = [(v, w) for v, w in values if v is not None]
    total = sum(w for _, w in known)
    if not known:
        return None
    if not total:
        return known[0][0]
    return round(sum(v * w for v, w in known) / total, 4)


def merge_status(statuses: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """
    Several workers' /status merged: counts and rates summed, shares and
    ramps (the same in every worker: pure functions of the configuration and
    the clock) from the first, rolled back if any worker rolled back, an
    address in rotation only if every worker has it in rotation, and the
    error rate and percentiles weighted by each worker's requests (the
    percentiles so are an estimate).
    """
    first = statuses[0]
    colors: dict[str, Any] = {}
    for color, base in first["colors"].items():
        each = [s["colors"][color] for s in statuses if color in s["colors"]]
        merged = dict(base)
        for field in ("requests", "upstream_errors", "open_tunnels"):
            merged[field] = sum(c[field] for c in each)
        rates = [c["requests_per_second"] for c in each]
        merged["requests_per_second"] = round(sum(rates), 2)
        merged["error_rate"] = _weighted([(c["error_rate"], c["requests_per_second"]) for c in each])
        for field in ("p50_ms", "p99_ms"):
            merged[field] = _weighted([(c[field], c["requests_per_second"]) for c in each])
        reasons = [c["rollback_reason"] for c in each if c["rolled_back"]]
        merged["rolled_back"] = bool(reasons)
        merged["rollback_reason"] = reasons[0] if reasons else None
        addresses: dict[str, dict[str, Any]] = {}
        for c in each:
            for address in c["addresses"]:
                seen = addresses.setdefault(address["address"], dict(address))
                seen["in_rotation"] = seen["in_rotation"] and address["in_rotation"]
                seen["ejected_for_seconds"] = max(
                    seen["ejected_for_seconds"], address["ejected_for_seconds"]
                )
        merged["addresses"] = list(addresses.values())
        colors[color] = merged
    total_rate = sum(c["requests_per_second"] for c in colors.values())
    for c in colors.values():
        c["observed_share"] = round(c["requests_per_second"] / total_rate, 4) if total_rate else None
    result = dict(first)
    result["colors"] = colors
    result["open_connections"] = sum(s["open_connections"] for s in statuses)
    result["draining"] = any(s["draining"] for s in statuses)
    return result


def merge_history(histories: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several workers' /history merged: requests summed per second, error rates weighted by them."""
    first = histories[0]
    colors: dict[str, Any] = {}
    for color in first["colors"]:
        each = [h["colors"][color] for h in histories if color in h["colors"]]
        length = min(len(c["requests_per_second"]) for c in each)
        requests = [sum(c["requests_per_second"][i] for c in each) for i in range(length)]
        rates = [
            _weighted([(c["error_rate"][i], c["requests_per_second"][i]) for c in each])
            for i in range(length)
        ]
        colors[color] = {"requests_per_second": requests, "error_rate": rates}
    return {**first, "colors": colors}
