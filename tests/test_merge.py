"""Merging the workers' admin answers: /metrics, /status and /history as one replica's."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._merge import merge_history, merge_metrics, merge_status

_WORKER_A = """\
# HELP sillyproxy_requests_total Requests answered.
# TYPE sillyproxy_requests_total counter
sillyproxy_requests_total{code="200",color="blue",method="GET"} 7.0
sillyproxy_requests_total{code="500",color="green",method="GET"} 1.0
# HELP sillyproxy_request_duration_seconds Time.
# TYPE sillyproxy_request_duration_seconds histogram
sillyproxy_request_duration_seconds_bucket{color="blue",le="0.005"} 5.0
sillyproxy_request_duration_seconds_bucket{color="blue",le="+Inf"} 7.0
sillyproxy_request_duration_seconds_count{color="blue"} 7.0
sillyproxy_request_duration_seconds_sum{color="blue"} 0.5
# HELP sillyproxy_inflight_requests In flight.
# TYPE sillyproxy_inflight_requests gauge
sillyproxy_inflight_requests{color="blue"} 2.0
# HELP sillyproxy_color_share Share.
# TYPE sillyproxy_color_share gauge
sillyproxy_color_share{color="blue"} 0.8
# HELP sillyproxy_rolled_back Rolled back.
# TYPE sillyproxy_rolled_back gauge
sillyproxy_rolled_back{color="green"} 0.0
# HELP sillyproxy_upstream_up Up.
# TYPE sillyproxy_upstream_up gauge
sillyproxy_upstream_up{address="10.0.0.1",color="blue"} 1.0
"""

_WORKER_B = """\
# HELP sillyproxy_requests_total Requests answered.
# TYPE sillyproxy_requests_total counter
sillyproxy_requests_total{code="200",color="blue",method="GET"} 3.0
sillyproxy_requests_total{code="200",color="blue",method="POST"} 4.0
# HELP sillyproxy_request_duration_seconds Time.
# TYPE sillyproxy_request_duration_seconds histogram
sillyproxy_request_duration_seconds_bucket{color="blue",le="0.005"} 1.0
sillyproxy_request_duration_seconds_bucket{color="blue",le="+Inf"} 3.0
sillyproxy_request_duration_seconds_count{color="blue"} 3.0
sillyproxy_request_duration_seconds_sum{color="blue"} 0.25
# HELP sillyproxy_inflight_requests In flight.
# TYPE sillyproxy_inflight_requests gauge
sillyproxy_inflight_requests{color="blue"} 1.0
# HELP sillyproxy_color_share Share.
# TYPE sillyproxy_color_share gauge
sillyproxy_color_share{color="blue"} 0.8
# HELP sillyproxy_rolled_back Rolled back.
# TYPE sillyproxy_rolled_back gauge
sillyproxy_rolled_back{color="green"} 1.0
# HELP sillyproxy_upstream_up Up.
# TYPE sillyproxy_upstream_up gauge
sillyproxy_upstream_up{address="10.0.0.1",color="blue"} 0.0
"""


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


class MergeMetricsTests(SynchronousTestCase):
    def test_counters_histograms_and_gauges(self) -> None:
        """If two workers are scraped, then counters and histograms add up, counting gauges add up, shares stay, rolled back is any, up is all."""
        merged = _samples(merge_metrics([_WORKER_A, _WORKER_B]))
        blue_get = (("code", "200"), ("color", "blue"), ("method", "GET"))
        self.assertEqual(merged[("sillyproxy_requests_total", blue_get)], 10.0)
        self.assertEqual(
            merged[("sillyproxy_requests_total", (("code", "200"), ("color", "blue"), ("method", "POST")))], 4.0
        )
        self.assertEqual(
            merged[("sillyproxy_requests_total", (("code", "500"), ("color", "green"), ("method", "GET")))], 1.0
        )
        blue = (("color", "blue"),)
        self.assertEqual(merged[("sillyproxy_request_duration_seconds_count", blue)], 10.0)
        self.assertEqual(merged[("sillyproxy_request_duration_seconds_sum", blue)], 0.75)
        self.assertEqual(
            merged[("sillyproxy_request_duration_seconds_bucket", (("color", "blue"), ("le", "0.005")))], 6.0
        )
        self.assertEqual(merged[("sillyproxy_inflight_requests", blue)], 3.0)
        self.assertEqual(merged[("sillyproxy_color_share", blue)], 0.8)
        self.assertEqual(merged[("sillyproxy_rolled_back", (("color", "green"),))], 1.0)
        self.assertEqual(
            merged[("sillyproxy_upstream_up", (("address", "10.0.0.1"), ("color", "blue")))], 0.0
        )

    def test_an_exited_workers_counters_stay(self) -> None:
        """If a worker has exited, then its counters and histograms still count and its gauges no longer do."""
        merged = _samples(merge_metrics([_WORKER_B], retired=[_WORKER_A]))
        blue_get = (("code", "200"), ("color", "blue"), ("method", "GET"))
        self.assertEqual(merged[("sillyproxy_requests_total", blue_get)], 10.0)
        self.assertEqual(merged[("sillyproxy_request_duration_seconds_count", (("color", "blue"),))], 10.0)
        self.assertEqual(merged[("sillyproxy_inflight_requests", (("color", "blue"),))], 1.0)
        self.assertEqual(merged[("sillyproxy_upstream_up", (("address", "10.0.0.1"), ("color", "blue")))], 0.0)

    def test_one_worker_is_itself(self) -> None:
        """If there is one worker, then the merge says what it said."""
        self.assertEqual(_samples(merge_metrics([_WORKER_A])), _samples(_WORKER_A.encode()))


def _color(**fields: Any) -> dict[str, Any]:
    color = {
        "url": "http://b",
        "weight": 1,
        "share": 0.5,
        "requests": 0,
        "upstream_errors": 0,
        "open_tunnels": 0,
        "requests_per_second": 0.0,
        "error_rate": None,
        "p50_ms": None,
        "p99_ms": None,
        "rolled_back": False,
        "rollback_reason": None,
        "observed_share": None,
        "addresses": [{"address": "10.0.0.1", "in_rotation": True, "ejected_for_seconds": 0.0}],
    }
    color.update(fields)
    return color


class MergeStatusTests(SynchronousTestCase):
    def test_counts_rates_and_rollbacks(self) -> None:
        """If two workers report, then counts and rates add up, error rates and percentiles are weighted by traffic, and a rollback anywhere shows."""
        a = {
            "draining": False,
            "open_connections": 3,
            "colors": {
                "blue": _color(requests=30, requests_per_second=3.0, error_rate=0.0, p50_ms=1.0, p99_ms=5.0),
                "green": _color(requests=10, requests_per_second=1.0, error_rate=0.5),
            },
        }
        b = {
            "draining": False,
            "open_connections": 2,
            "colors": {
                "blue": _color(
                    requests=10,
                    requests_per_second=1.0,
                    error_rate=0.0,
                    p50_ms=3.0,
                    p99_ms=9.0,
                    addresses=[{"address": "10.0.0.1", "in_rotation": False, "ejected_for_seconds": 9.5}],
                ),
                "green": _color(
                    requests=10,
                    requests_per_second=1.0,
                    error_rate=1.0,
                    rolled_back=True,
                    rollback_reason="error rate 1.000",
                ),
            },
        }
        merged = merge_status([a, b])
        blue, green = merged["colors"]["blue"], merged["colors"]["green"]
        self.assertEqual((blue["requests"], blue["requests_per_second"]), (40, 4.0))
        self.assertEqual((blue["p50_ms"], blue["p99_ms"]), (1.5, 6.0))
        self.assertEqual(blue["addresses"], [{"address": "10.0.0.1", "in_rotation": False, "ejected_for_seconds": 9.5}])
        self.assertEqual(green["error_rate"], 0.75)
        self.assertEqual((green["rolled_back"], green["rollback_reason"]), (True, "error rate 1.000"))
        self.assertEqual((blue["observed_share"], green["observed_share"]), (0.6667, 0.3333))
        self.assertEqual(merged["open_connections"], 5)

    def test_history_adds_up_each_second(self) -> None:
        """If two workers have history, then requests add up per second and error rates are weighted by them."""
        a = {"interval_seconds": 1, "colors": {"blue": {"requests_per_second": [1, 0, 3], "error_rate": [0.0, None, 1.0]}}}
        b = {"interval_seconds": 1, "colors": {"blue": {"requests_per_second": [1, 2, 1], "error_rate": [1.0, 0.5, 0.0]}}}
        merged = merge_history([a, b])
        self.assertEqual(merged["colors"]["blue"], {"requests_per_second": [2, 2, 4], "error_rate": [0.5, 0.5, 0.75]})
