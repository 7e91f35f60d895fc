"""
Automatic rollback and the rollout's weights, driven by a clock the test
moves: the sliding window, the decision, the ramp's timer, and through the
proxy in memory, a failing green rolled back and the next request on blue.
"""

from __future__ import annotations

import attrs
from twisted.internet.task import Clock
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._analysis import ErrorWindow, RollbackGuard
from sillyproxy._ramp import Ramp
from sillyproxy._rollout import Rollout
from sillyproxy._routing import Router
from sillyproxy._sticky import Ranker, parse_sticky
from sillyproxy.override import make_pass

from .support import (
    AgentUpstream,
    CaptureResource,
    HeldResource,
    InMemoryProxy,
    TableTests,
    backend,
    failing_agent,
    rows,
)

T0 = 1796119200.0


def _logged(test: SynchronousTestCase) -> list[str]:
    """Every log line from now to the end of the test, formatted."""
    lines: list[str] = []

    def observe(event: LogEvent) -> None:
        text = formatEvent(event)
        if text:
            lines.append(text)

    globalLogPublisher.addObserver(observe)
    test.addCleanup(globalLogPublisher.removeObserver, observe)
    return lines


class ErrorWindowTests(TableTests):
    @rows(
        # (events as (time, failed), when asked, (requests, failures))
        ([(0.0, False), (1.0, True)], 1.0, (2, 1)),
        # A 30 s window in 1 s slots holds the current slot and the 29 before
        # it: an event in slot 1 is in at 30.0, one in slot 0 is out.
        ([(0.5, True), (30.0, False)], 30.0, (1, 0)),
        ([(1.0, True), (30.0, False)], 30.0, (2, 1)),
        ([(0.0, True)], 29.99, (1, 1)),
        ([(0.0, True)], 30.0, (0, 0)),
        # Long quiet: everything has slid out.
        ([(0.0, True), (5.0, True)], 1000.0, (0, 0)),
        # A clock step back within the window is counted; beyond it, the
        # window starts again at the new time.
        ([(100.0, False), (95.0, True)], 100.0, (2, 1)),
        ([(100.0, False), (60.0, True)], 60.0, (1, 1)),
    )
    def test_sliding_totals(
        self, events: list[tuple[float, bool]], now: float, expected: tuple[int, int]
    ) -> None:
        """If requests end over time, then the window holds those of the last 30 s only."""
        window = ErrorWindow(30.0)
        for when, failed in events:
            window.add(when, failed)
        self.assertEqual(window.totals(now), expected)

    def test_clock_corrected_after_a_jump_forward(self) -> None:
        """If the clock jumps an hour ahead and is put back, then requests after the correction are counted."""
        window = ErrorWindow(30.0)
        window.add(T0 + 3600, False)
        for i in range(20):
            window.add(T0 + i * 0.1, True)
        self.assertEqual(window.totals(T0 + 2), (20, 20))

    def test_steady_traffic_keeps_a_window_of_requests(self) -> None:
        """If a request ends every 0.1 s for 100 s, then a 30 s window holds 300 of them, give or take a slot."""
        window = ErrorWindow(30.0)
        for tenth in range(1000):
            window.add(tenth / 10, tenth % 10 == 0)
        requests, failures = window.totals(99.95)
        self.assertTrue(290 <= requests <= 300, requests)
        self.assertTrue(29 <= failures <= 30, failures)


class GuardTests(SynchronousTestCase):
    def guard(self, threshold: float = 0.1, min_requests: int = 20, accept: bool = True) -> list[tuple[str, str]]:
        self.decisions: list[tuple[str, str]] = []

        def roll_back(color: str, reason: str) -> bool:
            self.decisions.append((color, reason))
            return accept

        self.subject = RollbackGuard({"green": threshold}, 30.0, min_requests, roll_back)
        return self.decisions

    def test_needs_the_minimum_number_of_requests(self) -> None:
        """If a colour has failed every request but has fewer than the minimum in the window, then it is not rolled back; at the minimum it is."""
        decisions = self.guard()
        for i in range(19):
            self.subject.observe("green", T0 + i * 0.1, True)
        self.assertEqual(decisions, [])
        self.subject.observe("green", T0 + 2, True)
        [(color, reason)] = decisions
        self.assertEqual(color, "green")
        self.assertEqual(
            reason,
            "error rate 1.000 over the last 30 s (20 of 20 requests failed) exceeds "
            "GREEN_ROLLBACK_ERROR_RATE=0.1",
        )

    def test_threshold_must_be_exceeded(self) -> None:
        """If exactly the threshold's share fails, then nothing happens; one more failure rolls back."""
        decisions = self.guard(threshold=0.1)
        for i in range(20):
            self.subject.observe("green", T0, i < 2)
        self.assertEqual(decisions, [])
        self.subject.observe("green", T0, True)
        self.assertEqual(len(decisions), 1)
        self.assertIn("(3 of 21 requests failed)", decisions[0][1])

    def test_old_failures_slide_out(self) -> None:
        """If failures are older than the window, then they no longer count."""
        decisions = self.guard(threshold=0.5)
        for i in range(10):
            self.subject.observe("green", T0, True)
        for i in range(20):
            self.subject.observe("green", T0 + 31, i == 0)
        self.assertEqual(decisions, [])

    def test_other_colours_are_not_judged(self) -> None:
        """If an unarmed colour fails every request, then it is never rolled back."""
        decisions = self.guard()
        for _ in range(50):
            self.subject.observe("blue", T0, True)
            self.subject.observe("-", T0, True)
        self.assertEqual(decisions, [])

    def test_once_rolled_back_no_more_decisions(self) -> None:
        """If a colour was rolled back, then further failures ask nothing more."""
        decisions = self.guard(min_requests=1)
        for _ in range(5):
            self.subject.observe("green", T0, True)
        self.assertEqual(len(decisions), 1)

    def test_refused_rollback_is_asked_again(self) -> None:
        """If the rollout refuses (no other colour could serve), then the colour stays watched."""
        decisions = self.guard(min_requests=1, accept=False)
        self.subject.observe("green", T0, True)
        self.subject.observe("green", T0, True)
        self.assertEqual(len(decisions), 2)


class _Upstreams(dict):  # type: ignore[type-arg]
    def __missing__(self, color: str) -> AgentUpstream:
        upstream = self[color] = AgentUpstream(failing_agent(AssertionError("not sent")))
        return upstream


def _rollout(clock: Clock, ramp: Ramp | None, blue_weight: int = 4, red: bool = False) -> tuple[Rollout, Router]:
    backends = [backend("blue", "http://b", blue_weight)]
    if red:
        backends.append(backend("red", "http://r", 1))
    backends.append(attrs.evolve(backend("green", "http://g", 0), ramp=ramp))
    router = Router(backends, _Upstreams(), lambda n: 0)
    return Rollout(backends, router, clock), router


class RolloutTests(SynchronousTestCase):
    def test_weights_follow_the_ramp_on_the_clock(self) -> None:
        """If the clock passes each step boundary, then the router's weights change right then, and each change is logged with the new split."""
        clock = Clock()
        clock.advance(T0 - 10)
        lines = _logged(self)
        rollout, router = _rollout(clock, Ramp((10.0, 50.0, 100.0), T0, 60.0))
        rollout.start()
        self.addCleanup(rollout.stop)

        def green_share() -> float:
            weights = router.weights
            return weights["green"] / sum(weights.values())

        self.assertEqual(green_share(), 0.0)
        clock.advance(9.999)
        self.assertEqual(green_share(), 0.0)
        clock.advance(0.001)
        self.assertAlmostEqual(green_share(), 0.10)
        clock.advance(60)
        self.assertAlmostEqual(green_share(), 0.50)
        clock.advance(60)
        self.assertAlmostEqual(green_share(), 1.0)
        clock.advance(60)
        self.assertAlmostEqual(green_share(), 1.0)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(
            lines,
            [
                "green ramp: 3 steps begin at 2026-12-01T10:00:00.000Z; until then blue 100%, green 0%",
                "green ramp step 1 of 3 (10%) until 2026-12-01T10:01:00.000Z: blue 90%, green 10%",
                "green ramp step 2 of 3 (50%) until 2026-12-01T10:02:00.000Z: blue 50%, green 50%",
                "green ramp step 3 of 3 (100%) until 2026-12-01T10:03:00.000Z: blue 0%, green 100%",
                "green ramp complete at 100%: blue 0%, green 100%",
            ],
        )

    def test_restarted_mid_ramp_resumes_at_the_clocks_step(self) -> None:
        """If a rollout starts in the middle of a ramp, then it is at the step the clock says, at once."""
        clock = Clock()
        clock.advance(T0 + 130)
        rollout, router = _rollout(clock, Ramp((10.0, 50.0, 100.0), T0, 60.0), blue_weight=1)
        self.assertEqual(router.weights["green"] / sum(router.weights.values()), 1.0)
        position = rollout.ramp_position("green", clock.seconds())
        assert position is not None
        self.assertEqual((position.step, position.next_step_at), (3, T0 + 180))

    def test_rollback_gives_the_colour_nothing(self) -> None:
        """If the ramping colour is rolled back, then it gets 0 and the others share everything by their weights, and the ramp's timer changes nothing after."""
        clock = Clock()
        clock.advance(T0)
        lines = _logged(self)
        rollout, router = _rollout(clock, Ramp((10.0, 50.0), T0, 60.0), red=True)
        rollout.start()
        self.assertTrue(rollout.roll_back("green", "too many errors"))
        self.assertEqual(router.weights, {"blue": 4, "red": 1, "green": 0})
        clock.advance(60)
        self.assertEqual(router.weights, {"blue": 4, "red": 1, "green": 0})
        self.assertEqual(rollout.rolled_back, {"green": "too many errors"})
        self.assertIn("green rolled back: too many errors; new split: blue 80%, red 20%, green 0%", lines)
        # Configured (what the ramp alone gives) still says 50 %.
        configured = rollout.configured_weights(clock.seconds())
        self.assertAlmostEqual(configured["green"] / sum(configured.values()), 0.5)

    def test_last_colour_standing_is_not_rolled_back(self) -> None:
        """If rolling a colour back would leave no colour with a share, then it is refused (once logged) and the weights stay."""
        clock = Clock()
        lines = _logged(self)
        router = Router(
            [backend("blue", "http://b", 0), backend("green", "http://g", 3)], _Upstreams(), lambda n: 0
        )
        rollout = Rollout([backend("blue", "http://b", 0), backend("green", "http://g", 3)], router, clock)
        self.assertFalse(rollout.roll_back("green", "errors"))
        self.assertFalse(rollout.roll_back("green", "errors"))
        self.assertEqual(router.weights, {"blue": 0, "green": 3})
        self.assertEqual(rollout.rolled_back, {})
        self.assertEqual(sum("not rolled back" in line for line in lines), 1)

    def test_sticky_users_only_move_to_the_ramping_colour(self) -> None:
        """If the ramp steps up on the clock, then a sticky user who got green keeps it, and users only ever move to green."""
        clock = Clock()
        clock.advance(T0)
        backends = [
            backend("blue", "http://b", 3),
            backend("red", "http://r", 1),
            attrs.evolve(backend("green", "http://g", 0), ramp=Ramp((5.0, 25.0, 50.0), T0, 60.0)),
        ]
        router = Router(backends, _Upstreams(), lambda n: 0, sticky_secret=b"s")
        rollout = Rollout(backends, router, clock)
        rollout.start()
        self.addCleanup(rollout.stop)
        keys = [b"user-%d" % i for i in range(1000)]
        greens = []
        before = {key: router.choose_for(key).color for key in keys}  # type: ignore[union-attr]
        # Steps 2 and 3 move users; the ramp's end keeps 50 %, and moves nobody.
        for expect_moves in (True, True, False):
            clock.advance(60)
            now = {key: router.choose_for(key).color for key in keys}  # type: ignore[union-attr]
            moved = [key for key in keys if now[key] != before[key]]
            self.assertEqual(bool(moved), expect_moves)
            self.assertLessEqual({now[key] for key in moved}, {"green"})
            greens.append(sum(color == "green" for color in now.values()))
            before = now
        # About 25 % then 50 %, and 50 % after the last step ends.
        self.assertTrue(200 <= greens[0] <= 300 and 430 <= greens[1] <= 570, greens)
        self.assertEqual(greens[1], greens[2])

    def test_sticky_users_of_a_rolled_back_colour_move_and_no_one_else(self) -> None:
        """If green is rolled back, then its sticky users move to their next best colour and every other user stays put."""
        clock = Clock()
        backends = [backend("blue", "http://b", 2), backend("red", "http://r", 1), backend("green", "http://g", 1)]
        router = Router(backends, _Upstreams(), lambda n: 0, sticky_secret=b"s")
        rollout = Rollout(backends, router, clock)
        keys = [b"user-%d" % i for i in range(500)]
        before = {key: router.choose_for(key) for key in keys}
        rollout.roll_back("green", "errors")
        ranker = Ranker([("blue", 2), ("red", 1), ("green", 1)], b"s")
        for key in keys:
            chosen = router.choose_for(key)
            assert chosen is not None and before[key] is not None
            if before[key].color == "green":  # type: ignore[union-attr]
                self.assertEqual(chosen.color, ranker.rank(key)[1])
            else:
                self.assertEqual(chosen, before[key])


class ProxyRollbackTests(SynchronousTestCase):
    def proxy(
        self,
        green: CaptureResource,
        min_requests: int = 20,
        response_timeout: float = 60.0,
        **options: object,
    ) -> InMemoryProxy:
        self.blue = CaptureResource(body=b"blue")
        self.green = green
        blue = backend("blue", "http://blue.internal:8080", 1)
        green_backend = attrs.evolve(
            backend("green", "http://green.internal:8080", 1), rollback_error_rate=0.2
        )
        proxy = InMemoryProxy(
            [(blue, self.blue), (green_backend, green)],
            canary_options={"window": 30.0, "min_requests": min_requests},
            forward_options=dict(options),
            response_timeout=response_timeout,
        )
        proxy.clock.advance(T0)
        return proxy

    def get(self, proxy: InMemoryProxy, headers: bytes = b"") -> tuple[int, bytes]:
        written, _ = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n")
        status = int(written.split(b" ", 2)[1])
        return status, written.split(b"\r\n\r\n", 1)[1]

    def test_failing_green_is_rolled_back_after_the_minimum(self) -> None:
        """If green answers 500, then once 20 of its requests are in the window it is rolled back, and the very next request goes to blue."""
        proxy = self.proxy(CaptureResource(status=500, body=b"green broke"))
        canary = proxy.canary
        assert canary is not None
        green_answers = 0
        for _ in range(200):
            status, body = self.get(proxy)
            if body == b"green broke":
                green_answers += 1
            if canary.rollout.rolled_back:
                break
            proxy.clock.advance(0.01)
        self.assertEqual(green_answers, 20)
        self.assertIn("(20 of 20 requests failed)", canary.rollout.rolled_back["green"])
        for _ in range(30):
            self.assertEqual(self.get(proxy), (200, b"blue"))
        self.assertEqual(len(self.green.seen), 20)

    def test_healthy_green_stays(self) -> None:
        """If green answers well, then it is never rolled back."""
        proxy = self.proxy(CaptureResource(body=b"green"))
        for _ in range(100):
            self.get(proxy)
        assert proxy.canary is not None
        self.assertEqual(proxy.canary.rollout.rolled_back, {})
        self.assertGreater(len(self.green.seen), 20)

    def test_overrides_still_reach_a_rolled_back_colour(self) -> None:
        """If green was rolled back, then a tester's override pass still reaches it, for debugging."""
        proxy = self.proxy(
            CaptureResource(status=500, body=b"green broke"), min_requests=1, override_secret=b"k"
        )
        assert proxy.canary is not None
        proxy.canary.rollout.roll_back("green", "errors")
        self.assertEqual(self.get(proxy), (200, b"blue"))
        header = b"Sillyproxy-Color: " + make_pass(b"k", "green").encode() + b"\r\n"
        self.assertEqual(self.get(proxy, header), (500, b"green broke"))

    def test_sticky_users_leave_a_rolled_back_colour(self) -> None:
        """If green was rolled back, then sticky users whose key chose green go to blue."""
        proxy = self.proxy(CaptureResource(body=b"green"), sticky=parse_sticky("header:X-User"))
        assert proxy.canary is not None
        ranker = Ranker([("blue", 1), ("green", 1)])
        key = next(b"u%d" % i for i in range(100) if ranker.rank(b"u%d" % i)[0] == "green")
        self.assertEqual(self.get(proxy, b"X-User: " + key + b"\r\n"), (200, b"green"))
        proxy.canary.rollout.roll_back("green", "errors")
        self.assertEqual(self.get(proxy, b"X-User: " + key + b"\r\n"), (200, b"blue"))

    def test_the_proxys_own_504_counts_against_the_colour(self) -> None:
        """If green never answers and the proxy answers 504 for it, then those count as green's failures and green is rolled back."""
        held = HeldResource()
        proxy = self.proxy(held, min_requests=5, response_timeout=1.0)  # type: ignore[arg-type]
        assert proxy.canary is not None
        for _ in range(100):
            proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            proxy.clock.advance(1)
            proxy.flush()
            if proxy.canary.rollout.rolled_back:
                break
        statuses = [r.status for r in proxy.access if r.color == "green"]
        self.assertEqual(statuses, [504] * 5)
        self.assertIn("(5 of 5 requests failed)", proxy.canary.rollout.rolled_back["green"])

    def test_attempt_failed_over_counts_against_its_colour(self) -> None:
        """If green refuses connections and its requests are retried on blue, then those attempts count as green's failures and green is rolled back."""
        # Three refusals eject green's one address: three is all it gets.
        proxy = self.proxy(CaptureResource(body=b"green"), min_requests=3)
        assert proxy.canary is not None
        # Nothing listens for green any more: every attempt is refused.
        del proxy.network.servers[proxy.backend_addresses["green"]]
        for _ in range(200):
            self.assertEqual(self.get(proxy), (200, b"blue"))
            if proxy.canary.rollout.rolled_back:
                break
        self.assertIn("green", proxy.canary.rollout.rolled_back)
        summary = proxy.canary.traffic.colors["green"].summary(proxy.clock.seconds() + 1)
        # Attempts, not answers: green answered nothing, and failed every attempt.
        self.assertEqual((summary.requests, summary.failovers, summary.error_rate), (0, 3, 1.0))
