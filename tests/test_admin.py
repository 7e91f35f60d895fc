"""In-memory tests of the admin listener: metrics, health, readiness and status."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._admin import admin_resource
from sillyproxy._metrics import ProxyMetrics
from sillyproxy._site import ProxySite

from .support import AgentUpstream, CaptureResource, InMemoryProxy, ScriptedAgent, backend, failing_agent


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
