"""In-memory tests of the admin listener: metrics, health, readiness and status."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._accesslog import AccessRecord
from sillyproxy._admin import admin_resource
from sillyproxy._metrics import ProxyMetrics
from sillyproxy._routing import Router
from sillyproxy._site import ProxySite

from .support import (
    AgentUpstream,
    CaptureResource,
    InMemoryProxy,
    ScriptedAgent,
    TableTests,
    backend,
    failing_agent,
    rows,
)


def unavailable() -> AgentUpstream:
    return AgentUpstream(ScriptedAgent(), available=False)


class AdminTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.blue = CaptureResource(body=b"fine")
        self.green = CaptureResource(status=500, body=b"broken")
        self.proxy = InMemoryProxy(
            [
                (backend("blue", "http://b:1", 4), self.blue),
                (backend("green", "http://g:1", 1), self.green),
            ],
            seed=3,
            metrics_for=lambda router: ProxyMetrics(
                CollectorRegistry(), router, "9.9.9", lambda: {"client": 2, "backend": 1}, self.clock.seconds
            ),
        )
        self.metrics = self.proxy.metrics
        self.site = ProxySite(None)
        self.admin = StubTreq(
            admin_resource(self.metrics, self.proxy.router, self.site, self.proxy.clock.seconds, "9.9.9", "tcp:8080")
        )

    def fetch(self, path: str):  # type: ignore[no-untyped-def]
        response = self.successResultOf(self.admin.get("http://admin" + path))
        return response.code, self.successResultOf(self.admin.content(response))

    def traffic(self, count: int) -> None:
        for _ in range(count):
            d = self.proxy.client.get("http://proxy/")
            self.proxy.flush()
            self.successResultOf(d)

    def test_metrics_count_known_traffic(self) -> None:
        """If 100 requests pass, then /metrics, parsed by prometheus_client, counts each by colour, code and method."""
        self.traffic(100)
        code, body = self.fetch("/metrics")
        self.assertEqual(code, 200)
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        requests = {
            (s.labels["color"], s.labels["code"], s.labels["method"]): s.value
            for s in families["sillyproxy_requests"].samples
            if s.name == "sillyproxy_requests_total"
        }
        self.assertEqual(requests, {("blue", "200", "GET"): len(self.blue.seen), ("green", "500", "GET"): len(self.green.seen)})
        self.assertEqual(sum(requests.values()), 100)
        counts = {
            s.labels["color"]: s.value
            for s in families["sillyproxy_request_duration_seconds"].samples
            if s.name.endswith("_count")
        }
        self.assertEqual(counts, {"blue": len(self.blue.seen), "green": len(self.green.seen)})
        weights = {s.labels["color"]: s.value for s in families["sillyproxy_color_weight"].samples}
        self.assertEqual(weights, {"blue": 4, "green": 1})
        self.assertEqual(
            {s.labels["side"]: s.value for s in families["sillyproxy_open_connections"].samples},
            {"client": 2, "backend": 1},
        )
        self.assertEqual([s.labels["version"] for s in families["sillyproxy_build_info"].samples], ["9.9.9"])
        inflight = {s.labels["color"]: s.value for s in families["sillyproxy_inflight_requests"].samples}
        self.assertEqual(inflight, {"blue": 0, "green": 0})

    def test_flagger_success_rate(self) -> None:
        """
        If green answers 500s, then the Flagger-style success rate per colour
        (requests without a 5xx over all requests) is 1.0 for blue, 0.0 for green.
        """
        self.traffic(50)
        _, body = self.fetch("/metrics")
        total: dict[str, float] = {}
        ok: dict[str, float] = {}
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                if s.name == "sillyproxy_requests_total":
                    color = s.labels["color"]
                    total[color] = total.get(color, 0) + s.value
                    if not s.labels["code"].startswith("5"):
                        ok[color] = ok.get(color, 0) + s.value
        rate = {color: ok.get(color, 0) / total[color] for color in total}
        self.assertEqual(rate, {"blue": 1.0, "green": 0.0})

    def test_health_and_readiness(self) -> None:
        """If the proxy runs, /healthz is 200; /readyz is 200 until a drain starts or no colour can serve."""
        self.assertEqual(self.fetch("/healthz"), (200, b"ok\n"))
        self.assertEqual(self.fetch("/readyz"), (200, b"ready\n"))
        self.site.draining = True
        self.assertEqual(self.fetch("/readyz"), (503, b"draining\n"))
        self.site.draining = False
        self.proxy.router.upstreams = {"blue": unavailable(), "green": unavailable()}
        self.assertEqual(self.fetch("/readyz"), (503, b"no colour can serve\n"))

    def test_no_internal_paths_on_the_admin_listener(self) -> None:
        """If anyone asks a replica's admin listener for the workers' internal paths, then they do not exist there (only on a worker's private socket)."""
        self.assertEqual(self.fetch("/internal/state")[0], 404)
        response = self.successResultOf(self.admin.post("http://admin/internal/apply", data=b"{}"))
        self.assertEqual(response.code, 404)

    def test_status(self) -> None:
        """If /status is asked for, then it gives the version, listen address and each colour's state and counts."""
        self.traffic(10)
        code, body = self.fetch("/status")
        status = json.loads(body)
        self.assertEqual((status["version"], status["listen"], status["draining"]), ("9.9.9", "tcp:8080", False))
        self.assertEqual(set(status["colors"]), {"blue", "green"})
        blue = status["colors"]["blue"]
        self.assertEqual((blue["url"], blue["weight"], blue["effective_weight"]), ("http://b:1", 4, 4))
        self.assertEqual(
            status["colors"]["blue"]["requests"] + status["colors"]["green"]["requests"], 10
        )

    def test_upstream_errors_counted(self) -> None:
        """If a backend refuses, then sillyproxy_upstream_errors_total counts it with reason connect."""
        from twisted.internet.error import ConnectionRefusedError

        self.proxy.router.upstreams = {
            "blue": AgentUpstream(failing_agent(ConnectionRefusedError())),
            "green": AgentUpstream(failing_agent(ConnectionRefusedError())),
        }
        self.traffic(3)
        _, body = self.fetch("/metrics")
        errors = {
            (s.labels["color"], s.labels["reason"]): s.value
            for f in text_string_to_metric_families(body.decode())
            for s in f.samples
            if s.name == "sillyproxy_upstream_errors_total"
        }
        self.assertEqual(sum(errors.values()), 6)  # each request tried twice: once, then failover
        self.assertEqual({reason for _, reason in errors}, {"connect"})


class MethodLabelTests(TableTests):
    @rows(
        (b"GET", "GET"),
        (b"get", "GET"),
        (b"Patch", "PATCH"),
        (b"OPTIONS", "OPTIONS"),
        (b"PROPFIND", "other"),
        (b"G\xffT", "other"),
    )
    def test_method_label(self, method: bytes, label: str) -> None:
        """If a request with this method ends, then it is counted under this method label: the usual ones by name, any other as "other"."""
        registry = CollectorRegistry()
        proxy = InMemoryProxy(
            [(backend("blue", "http://b:1"), CaptureResource())],
            metrics_for=lambda router: ProxyMetrics(registry, router, "9.9.9", lambda: {}, Clock().seconds),
        )
        proxy.metrics.observe(
            AccessRecord(
                time=0.0, client="-", method=method, target=b"/", color="blue",
                status=200, body_bytes=0, duration=0.001,
            )
        )
        families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
        labels = [s.labels["method"] for s in families["sillyproxy_requests"].samples if s.name.endswith("_total")]
        self.assertEqual(labels, [label])


class RetryMetricTests(SynchronousTestCase):
    def test_retries_counted_against_the_colour_that_failed(self) -> None:
        """
        If green refuses every connection and its requests are retried on
        blue, then sillyproxy_retries_total counts each, and the README's
        success rate (ok / (served + retried away)) is 0 for green and 1 for blue.
        """
        from twisted.internet.error import ConnectionRefusedError

        clock = Clock()
        blue = CaptureResource()
        proxy = InMemoryProxy(
            [(backend("blue", "http://b:1", 1), blue)],
            extra_backends=[backend("green", "http://g:1", 1)],
            seed=5,
            metrics_for=lambda router: ProxyMetrics(
                CollectorRegistry(), router, "9.9.9", lambda: {}, clock.seconds
            ),
        )
        proxy.router.upstreams["green"] = AgentUpstream(failing_agent(ConnectionRefusedError()))
        for _ in range(40):
            d = proxy.client.get("http://proxy/")
            proxy.flush()
            self.assertEqual(self.successResultOf(d).code, 200)
        assert proxy.metrics is not None
        samples = [
            s
            for f in text_string_to_metric_families(generate_latest(proxy.metrics.registry).decode())
            for s in f.samples
        ]
        retries = {
            (s.labels["from_color"], s.labels["to_color"]): s.value
            for s in samples
            if s.name == "sillyproxy_retries_total"
        }
        retried = len(blue.seen) - sum(1 for r in proxy.access if r.outcome != "failover")
        self.assertGreater(retried, 0)
        self.assertEqual(retries, {("green", "blue"): retried})
        served: dict[str, float] = {}
        ok: dict[str, float] = {}
        for s in samples:
            if s.name == "sillyproxy_requests_total":
                served[s.labels["color"]] = served.get(s.labels["color"], 0) + s.value
                if not s.labels["code"].startswith("5"):
                    ok[s.labels["color"]] = ok.get(s.labels["color"], 0) + s.value
        away = {"green": retries[("green", "blue")], "blue": 0}
        rate = {c: ok.get(c, 0) / (served.get(c, 0) + away[c]) for c in ("blue", "green")}
        self.assertEqual(rate, {"blue": 1.0, "green": 0.0})

    def test_process_metrics_registered(self) -> None:
        """If the tap's registry is used, then process_*, python_gc_* and python_info series are exposed."""
        from sillyproxy._metrics import registry_with_process_metrics

        names = {f.name for f in text_string_to_metric_families(generate_latest(registry_with_process_metrics()).decode())}
        self.assertTrue({"process_cpu_seconds", "python_gc_collections", "python_info"} <= names, names)


class QuietAdminTests(SynchronousTestCase):
    def test_admin_requests_not_logged(self) -> None:
        """If probes and scrapes reach the admin listener, then nothing is logged for them (a plain Site logs a line each)."""
        from twisted.logger import globalLogPublisher
        from twisted.web.server import Site

        from sillyproxy._admin import AdminSite

        from .support import InMemoryClient

        def logged(site_class: type[Site]) -> list[dict[str, object]]:
            resource = admin_resource(
                ProxyMetrics(CollectorRegistry(), Router([], {}, lambda n: 0), "1", lambda: {}, lambda: 0.0),
                Router([], {}, lambda n: 0),
                ProxySite(None),
                lambda: 0.0,
                "1",
                "tcp:8080",
            )
            events: list[dict[str, object]] = []
            globalLogPublisher.addObserver(events.append)
            site = site_class(resource, reactor=Clock())
            # Started as a listener starts it: that is when Site opens its log.
            site.doStart()
            try:
                client = InMemoryClient(site)
                for path in ("/healthz", "/readyz", "/metrics"):
                    d = client.get("http://admin" + path)
                    client.flush()
                    self.successResultOf(d)
            finally:
                site.doStop()
                globalLogPublisher.removeObserver(events.append)
            return [e for e in events if "GET /" in str(e)]

        self.assertGreaterEqual(len(logged(Site)), 3)
        self.assertEqual(logged(AdminSite), [])


T0 = 1796119200.0


class CanaryAdminTests(SynchronousTestCase):
    """/status, /history, /healthz and /metrics for a ramping, rollback-armed, mirrored green."""

    def setUp(self) -> None:
        import attrs

        from sillyproxy._ramp import Ramp

        self.blue = CaptureResource(body=b"fine")
        self.green = CaptureResource(status=500, body=b"broken")
        self.red = CaptureResource(body=b"red")
        green = attrs.evolve(
            backend("green", "http://g:1", 0),
            ramp=Ramp((10.0, 50.0, 100.0), T0 + 100, 60.0),
            rollback_error_rate=0.5,
        )
        self.proxy = InMemoryProxy(
            [
                (backend("blue", "http://b:1", 3), self.blue),
                (green, self.green),
                (attrs.evolve(backend("red", "http://r:1", 1), mirror_percent=50.0), self.red),
            ],
            seed=3,
            canary_options={"window": 30.0, "min_requests": 10},
            mirrors=[("red", 50.0)],
        )
        self.proxy.clock.advance(T0 + 130)
        self.canary = self.proxy.canary
        assert self.canary is not None
        # Made after the proxy, so that it can see the rollout and the
        # mirrors; finished requests reach it all the same.
        self.proxy.metrics = ProxyMetrics(
            CollectorRegistry(),
            self.proxy.router,
            "9.9.9",
            lambda: {},
            self.proxy.clock.seconds,
            rolled_back=self.canary.rollout.rolled_back,
            mirrors=self.proxy.mirrors,
        )
        self.canary.rollout.start()
        self.addCleanup(self.canary.rollout.stop)
        self.admin = self.admin_client(
            traffic=self.canary.traffic, mirrors=self.proxy.mirrors, rollback_healthz=True
        )

    def admin_client(self, **options: Any) -> StubTreq:
        """The admin tree over this proxy and its rollout, with C{options} for admin_resource."""
        return StubTreq(
            admin_resource(
                self.proxy.metrics,
                self.proxy.router,
                ProxySite(None),
                self.proxy.clock.seconds,
                "9.9.9",
                "tcp:8080",
                rollout=self.canary.rollout,
                **options,
            )
        )

    def fetch(self, path: str):  # type: ignore[no-untyped-def]
        response = self.successResultOf(self.admin.get("http://admin" + path))
        return response.code, self.successResultOf(self.admin.content(response))

    def get(self, count: int) -> None:
        for _ in range(count):
            self.proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            self.proxy.flush()

    def test_status_during_a_ramp(self) -> None:
        """If green is at step 1 of its ramp, then /status gives each colour's share, configured share and the ramp's position."""
        code, body = self.fetch("/status")
        self.assertEqual(code, 200)
        status = json.loads(body)
        colors = status["colors"]
        self.assertEqual(status["time"], "2026-12-01T10:02:10.000Z")
        self.assertEqual(
            colors["green"]["ramp"],
            {"step": 1, "steps": 3, "percent": 10.0, "next_step_at": "2026-12-01T10:02:40.000Z"},
        )
        self.assertIsNone(colors["blue"]["ramp"])
        self.assertEqual(
            {c: (v["share"], v["configured_share"]) for c, v in colors.items()},
            {"blue": (0.675, 0.675), "green": (0.1, 0.1), "red": (0.225, 0.225)},
        )
        self.assertEqual((colors["green"]["rolled_back"], colors["green"]["rollback_reason"]), (False, None))
        self.assertEqual(colors["red"]["mirror"], {"percent": 50.0})
        self.assertIsNone(colors["green"]["mirror"])
        self.assertEqual(colors["green"]["requests_per_second"], 0.0)
        self.assertIsNone(colors["green"]["error_rate"])
        self.assertIsNone(colors["green"]["p99_ms"])
        self.assertIsNone(colors["green"]["observed_share"])

    def test_last_ten_seconds_and_rollback(self) -> None:
        """If traffic passes and green fails, then /status shows each colour's last 10 s, green rolled back with its reason, /healthz 503 and the metrics."""
        self.get(200)
        self.assertIn("green", self.canary.rollout.rolled_back)
        self.proxy.clock.advance(1)
        status = json.loads(self.fetch("/status")[1])
        colors = status["colors"]
        green = colors["green"]
        self.assertTrue(green["rolled_back"])
        self.assertIn("GREEN_ROLLBACK_ERROR_RATE=0.5", green["rollback_reason"])
        self.assertEqual(green["share"], 0.0)
        self.assertEqual(green["configured_share"], 0.1)
        self.assertEqual(green["error_rate"], 1.0)
        self.assertEqual(colors["blue"]["error_rate"], 0.0)
        self.assertEqual(colors["blue"]["requests_per_second"], colors["blue"]["requests"] / 10)
        self.assertEqual(sum(c["requests"] for c in colors.values()), 200)
        self.assertAlmostEqual(sum(c["observed_share"] for c in colors.values()), 1.0, places=3)
        self.assertIsNotNone(colors["blue"]["p50_ms"])
        self.assertEqual(self.fetch("/healthz"), (503, b"rolled back: green"))
        # Readiness is the replica's ability to serve, which it keeps.
        self.assertEqual(self.fetch("/readyz")[0], 200)

        families = {
            f.name: f for f in text_string_to_metric_families(self.fetch("/metrics")[1].decode())
        }
        share = {s.labels["color"]: s.value for s in families["sillyproxy_color_share"].samples}
        self.assertEqual(share, {"blue": 0.75, "green": 0.0, "red": 0.25})
        rolled = {s.labels["color"]: s.value for s in families["sillyproxy_rolled_back"].samples}
        self.assertEqual(rolled, {"blue": 0, "green": 1, "red": 0})
        mirrored = {
            (s.labels["color"], s.labels["outcome"]): s.value
            for s in families["sillyproxy_mirrored_requests"].samples
            if s.name == "sillyproxy_mirrored_requests_total"
        }
        self.assertEqual(set(mirrored), {("red", o) for o in ("sent", "dropped", "too_large", "failed")})
        self.assertEqual(mirrored[("red", "sent")], len(self.red.seen) - colors["red"]["requests"])
        self.assertGreater(mirrored[("red", "sent")], 0)

    def test_history(self) -> None:
        """If traffic passes, then /history has five minutes of per-second points per colour, this traffic in the last."""
        self.get(30)
        self.proxy.clock.advance(1)
        history = json.loads(self.fetch("/history")[1])
        self.assertEqual(history["interval_seconds"], 1)
        self.assertEqual(history["end"], "2026-12-01T10:02:10.000Z")
        blue = history["colors"]["blue"]
        self.assertEqual(len(blue["requests_per_second"]), 300)
        self.assertEqual(
            sum(history["colors"][c]["requests_per_second"][-1] for c in ("blue", "green", "red")), 30
        )
        self.assertEqual(blue["error_rate"][-1], 0.0)
        self.assertIsNone(blue["error_rate"][0])

    def test_healthz_stays_ok_without_the_switch(self) -> None:
        """If SILLYPROXY_ROLLBACK_HEALTHZ is off, then /healthz says ok even after a rollback."""
        admin = self.admin_client()
        self.canary.rollout.roll_back("green", "errors")
        response = self.successResultOf(admin.get("http://admin/healthz"))
        self.assertEqual((response.code, self.successResultOf(admin.content(response))), (200, b"ok\n"))
