"""Table tests of each colour's recent traffic: what counts as a failure, the last 10 s, and five minutes of history."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._accesslog import AccessRecord
from sillyproxy._traffic import ColorTraffic, RecentTraffic, is_failure

from .support import TableTests, rows


def _record(status: int, outcome: str = "", color: str = "green", duration: float = 0.01) -> AccessRecord:
    return AccessRecord(0.0, "1.2.3.4", b"GET", b"/", color, status, 0, duration, outcome)


class FailureTests(TableTests):
    @rows(
        (200, "", False),
        (404, "", False),
        (499, "client closed", False),
        (500, "", True),
        (502, "upstream failed", True),
        (503, "no healthy backends", True),
        (504, "upstream failed", True),
        (200, "backend failed mid-body", True),
        (200, "backend stalled mid-body", True),
        (200, "client stopped reading", False),
        (101, "tunnel closed by backend, 5 bytes from the client", False),
    )
    def test_what_counts_against_a_colour(self, status: int, outcome: str, failed: bool) -> None:
        """If a request ends with a 5xx or a broken-off body, then it counts as a failure; client-side ends do not."""
        self.assertEqual(is_failure(_record(status, outcome)), failed)


class ColorTrafficTests(SynchronousTestCase):
    def test_last_ten_whole_seconds(self) -> None:
        """If requests end over 20 s, then the summary counts those of the 10 whole seconds before now."""
        traffic = ColorTraffic()
        for second in range(100, 120):
            for i in range(second - 99):
                traffic.add(second + i / 100, i == 0, 0.001 * (i + 1))
        summary = traffic.summary(120.5)
        # Seconds 110..119 hold 11..20 requests each, one failed each.
        self.assertEqual((summary.requests, summary.failures), (155, 10))
        self.assertEqual(summary.requests_per_second, 15.5)
        self.assertAlmostEqual(summary.error_rate or 0, 10 / 155)

    def test_percentiles_within_a_bucket(self) -> None:
        """If 99 requests take 1 ms and one takes 1 s, then p50 is about 1 ms and p99 too, and p100 is about 1 s."""
        traffic = ColorTraffic()
        for _ in range(99):
            traffic.add(10.0, False, 0.001)
        traffic.add(10.0, False, 1.0)
        summary = traffic.summary(11.0)
        for fraction, expected in ((0.5, 0.001), (0.99, 0.001), (1.0, 1.0)):
            value = summary.percentile(fraction)
            assert value is not None
            self.assertLess(abs(value - expected) / expected, 0.05, (fraction, value))

    def test_empty(self) -> None:
        """If nothing was served, then the rate is 0 and the error rate and percentiles are unknown."""
        summary = ColorTraffic().summary(1000.0)
        self.assertEqual(
            (summary.requests_per_second, summary.error_rate, summary.percentile(0.5)), (0.0, None, None)
        )

    def test_untimed_requests_count_but_have_no_latency(self) -> None:
        """If a tunnel ends, then it counts as a request but not in the percentiles."""
        traffic = RecentTraffic(["green"])
        traffic.observe(_record(101, duration=3600.0), 50.0)
        traffic.observe(_record(200, duration=0.002), 50.0)
        summary = traffic.colors["green"].summary(51.0)
        self.assertEqual(summary.requests, 2)
        p99 = summary.percentile(0.99)
        assert p99 is not None
        self.assertLess(p99, 0.01)

    def test_history_is_five_minutes_oldest_first(self) -> None:
        """If requests end in two seconds long apart, then history has 300 points, each at its second, zero elsewhere."""
        traffic = ColorTraffic()
        traffic.add(1000.2, False, 0.001)
        traffic.add(1000.7, True, 0.001)
        traffic.add(1250.0, False, 0.001)
        requests, rates = traffic.history(1300.5)
        self.assertEqual(len(requests), 300)
        # Index i is second 1000 + i.
        self.assertEqual((requests[0], rates[0]), (2, 0.5))
        self.assertEqual((requests[250], rates[250]), (1, 0.0))
        self.assertEqual(sum(requests), 3)
        self.assertEqual(sum(rate is not None for rate in rates), 2)
        # Five minutes on, all of it has aged out, even where slots were reused.
        requests, _ = traffic.history(1600.5)
        self.assertEqual(sum(requests), 0)

    def test_refused_requests_belong_to_no_colour(self) -> None:
        """If a request was served by no colour, then no colour counts it."""
        traffic = RecentTraffic(["green"])
        self.assertFalse(traffic.observe(_record(400, color="-"), 5.0))
        self.assertEqual(traffic.colors["green"].summary(6.0).requests, 0)

    def test_failovers_count_in_the_error_rate_not_the_answers(self) -> None:
        """If attempts on a colour fail over elsewhere, then they raise its error rate but are not requests it answered."""
        traffic = RecentTraffic(["green"])
        traffic.observe(_record(200), 50.0)
        traffic.failed_over("green", 50.0)
        traffic.failed_over("green", 50.0)
        summary = traffic.colors["green"].summary(51.0)
        self.assertEqual((summary.requests, summary.failovers), (1, 2))
        self.assertEqual(summary.requests_per_second, 0.1)
        self.assertAlmostEqual(summary.error_rate or 0, 2 / 3)
        requests, rates = traffic.colors["green"].history(51.0)
        self.assertEqual((requests[-1], rates[-1]), (1, 2 / 3))
