"""Tests of a colour's backend as a set of resolved addresses (fake resolver, fake clock)."""

from __future__ import annotations

from collections import Counter

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._address import BackendAddress
from sillyproxy._failures import NoHealthyAddress
from sillyproxy._upstream import ResolvingUpstream

from .support import FakeResolver, ScriptedAgent, backend


class RetireRecorder(BackendAddress):
    """An address whose agent answers at once and which records its retirement."""

    retired = False

    def retire(self):  # type: ignore[no-untyped-def]
        self.retired = True
        return succeed(None)


def make_upstream(resolver: FakeResolver, url: str = "http://tasks.myapp-v1:8080"):  # type: ignore[no-untyped-def]
    clock = Clock()
    made: dict[str, RetireRecorder] = {}

    def make(address: str) -> BackendAddress:
        made[address] = RetireRecorder(address, ScriptedAgent(lambda: succeed(address)))
        return made[address]

    upstream = ResolvingUpstream(backend("blue", url), resolver, clock, make, refresh=5)
    return upstream, clock, made


class UpstreamTests(SynchronousTestCase):
    def served_by(self, upstream: ResolvingUpstream, count: int) -> Counter[str]:
        return Counter(
            self.successResultOf(upstream.request(b"GET", b"http://tasks.myapp-v1:8080/"))
            for _ in range(count)
        )

    def test_requests_spread_over_every_address(self) -> None:
        """If the name resolves to four replicas, then successive requests go to each in turn."""
        resolver = FakeResolver(["127.0.1.4", "127.0.1.2", "127.0.1.3", "127.0.1.5"])
        upstream, _, _ = make_upstream(resolver)
        upstream.start()
        self.assertEqual(
            self.served_by(upstream, 8),
            Counter({"127.0.1.2": 2, "127.0.1.3": 2, "127.0.1.4": 2, "127.0.1.5": 2}),
        )

    def test_changes_picked_up_and_removed_addresses_drain(self) -> None:
        """If DNS changes, then new addresses join at the next refresh and removed ones retire."""
        resolver = FakeResolver(["127.0.1.2", "127.0.1.3"])
        upstream, clock, made = make_upstream(resolver)
        upstream.start()
        resolver.addresses = ["127.0.1.3", "127.0.1.9"]
        clock.advance(4.9)
        self.assertEqual(set(self.served_by(upstream, 4)), {"127.0.1.2", "127.0.1.3"})
        clock.advance(0.1)
        self.assertEqual(resolver.lookups, ["tasks.myapp-v1"] * 2)
        self.assertEqual(set(self.served_by(upstream, 4)), {"127.0.1.3", "127.0.1.9"})
        self.assertTrue(made["127.0.1.2"].retired)
        self.assertFalse(made["127.0.1.3"].retired)

    def test_failed_lookup_keeps_addresses(self) -> None:
        """If a later lookup finds nothing, then the last known addresses stay in use."""
        resolver = FakeResolver(["127.0.1.2"])
        upstream, clock, made = make_upstream(resolver)
        upstream.start()
        resolver.addresses = []
        clock.advance(5)
        self.assertEqual(self.served_by(upstream, 2), Counter({"127.0.1.2": 2}))
        self.assertFalse(made["127.0.1.2"].retired)

    def test_requests_wait_for_first_lookup(self) -> None:
        """If a request arrives before the first lookup ends, then it waits for it instead of failing."""
        resolver = FakeResolver(None)
        upstream, _, _ = make_upstream(resolver)
        upstream.start()
        waiting = upstream.request(b"GET", b"http://tasks.myapp-v1:8080/")
        cancelled = upstream.request(b"GET", b"http://tasks.myapp-v1:8080/")
        cancelled.cancel()
        self.failureResultOf(cancelled)
        self.assertNoResult(waiting)
        resolver.addresses = ["127.0.1.7"]
        resolver.answer(resolver.held.pop())
        self.assertEqual(self.successResultOf(waiting), "127.0.1.7")

    def test_never_resolved(self) -> None:
        """If the name has never resolved, then the colour is out of rotation and a request sent anyway finds no healthy address (a 503)."""
        resolver = FakeResolver([])
        upstream, _, _ = make_upstream(resolver)
        upstream.start()
        self.assertFalse(upstream.available)
        self.failureResultOf(upstream.request(b"GET", b"http://x/"), NoHealthyAddress)

    def test_ip_literal_not_resolved(self) -> None:
        """If the backend is an IP address, then it is used as it is, with no lookups."""
        resolver = FakeResolver(["127.9.9.9"])
        upstream, _, _ = make_upstream(resolver, "http://[::1]:8080")
        upstream.start()
        self.assertEqual(self.served_by(upstream, 2), Counter({"::1": 2}))
        self.assertEqual(resolver.lookups, [])

    def test_stop_retires_everything(self) -> None:
        """If the upstream stops, then lookups stop and every address's pool is closed."""
        resolver = FakeResolver(["127.0.1.2", "127.0.1.3"])
        upstream, clock, made = make_upstream(resolver)
        upstream.start()
        self.successResultOf(upstream.stop())
        clock.advance(60)
        self.assertEqual(len(resolver.lookups), 1)
        self.assertEqual({a: m.retired for a, m in made.items()}, {"127.0.1.2": True, "127.0.1.3": True})
