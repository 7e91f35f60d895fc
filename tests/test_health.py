"""Tests of active health checks with a fake treq client per address and a fake clock."""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._address import BackendAddress
from sillyproxy._health import HealthChecker
from sillyproxy._upstream import ResolvingUpstream

from .support import FakeResolver, ScriptedAgent, backend


class FakeResponse:
    length = 0

    def __init__(self, code: int) -> None:
        self.code = code

    def deliverBody(self, protocol):  # type: ignore[no-untyped-def]
        from twisted.python.failure import Failure
        from twisted.web.client import ResponseDone

        protocol.makeConnection(None)
        protocol.connectionLost(Failure(ResponseDone()))


class FakeClient:
    """Answers probes for one address from a script the test changes."""

    def __init__(self, script: dict[str, object], address: str) -> None:
        self.script = script
        self.address = address
        self.urls: list[str] = []

    def get(self, url: str):  # type: ignore[no-untyped-def]
        self.urls.append(url)
        outcome = self.script[self.address]
        if outcome is None:
            # Never answers.
            return Deferred()
        if isinstance(outcome, Exception):
            return fail(outcome)
        return succeed(FakeResponse(outcome))  # type: ignore[arg-type]


class HealthCheckTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.script: dict[str, object] = {"127.0.3.1": 200, "127.0.3.2": 200}
        self.clients: dict[str, FakeClient] = {}

        def client_for(address: BackendAddress) -> FakeClient:
            return self.clients.setdefault(address.address, FakeClient(self.script, address.address))

        self.upstream = ResolvingUpstream(
            backend("blue", "http://svc:8080"),
            FakeResolver(["127.0.3.1", "127.0.3.2"]),
            self.clock,
            lambda address: BackendAddress(address, ScriptedAgent(lambda: succeed(address))),
            refresh=5,
            health_check=HealthChecker("/healthz", 2, self.clock, client_for),  # type: ignore[arg-type]
        )
        self.upstream.start()

    def served(self, count: int) -> set[str]:
        return {self.successResultOf(self.upstream.request(b"GET", b"http://svc:8080/")) for _ in range(count)}

    def test_probes_each_address(self) -> None:
        """If C_HEALTH is set, then every address is probed at that path each interval."""
        self.clock.advance(2)
        self.assertEqual(self.clients["127.0.3.1"].urls, ["http://svc:8080/healthz"] * 2)
        self.assertEqual(len(self.clients["127.0.3.2"].urls), 2)

    def test_two_failures_out_two_passes_in(self) -> None:
        """If an address fails two probes in a row it leaves the rotation; two passes bring it back."""
        self.script["127.0.3.1"] = 503
        self.clock.advance(2)
        self.assertEqual(self.served(4), {"127.0.3.1", "127.0.3.2"})
        self.clock.advance(2)
        self.assertEqual(self.served(4), {"127.0.3.2"})
        self.script["127.0.3.1"] = 200
        self.clock.advance(2)
        self.assertEqual(self.served(4), {"127.0.3.2"})
        self.clock.advance(2)
        self.assertEqual(self.served(4), {"127.0.3.1", "127.0.3.2"})

    def test_one_failure_is_noise(self) -> None:
        """If a single probe fails between passes, then nothing changes."""
        self.clock.advance(2)
        self.script["127.0.3.1"] = ConnectionRefusedError()
        self.clock.advance(2)
        self.script["127.0.3.1"] = 200
        self.clock.advance(2)
        self.assertEqual(self.served(4), {"127.0.3.1", "127.0.3.2"})

    def test_colour_out_when_every_address_fails(self) -> None:
        """If every address fails its checks, then the colour is unavailable."""
        self.script.update({"127.0.3.1": 500, "127.0.3.2": ConnectionRefusedError()})
        self.assertTrue(self.upstream.available)
        self.clock.advance(2)
        self.clock.advance(2)
        self.assertFalse(self.upstream.available)

    def test_probe_that_never_answers_fails_on_the_clock(self) -> None:
        """If an address never answers its probes, then each times out after an interval of the given clock, and two take it out."""
        self.script["127.0.3.1"] = None
        # Probes go out at 2 s and (the loop waits for the last round) 6 s.
        self.clock.advance(2)
        self.clock.advance(2)
        self.assertEqual(self.served(4), {"127.0.3.1", "127.0.3.2"})
        self.clock.advance(2)
        self.clock.advance(2)
        self.assertEqual(self.served(4), {"127.0.3.2"})
