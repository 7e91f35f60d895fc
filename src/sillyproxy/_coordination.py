"""
What a supervisor and its workers tell each other, so that decisions made
once per process stay made once per replica:

  - active health checks: only worker 0 probes; the supervisor passes its
    verdicts on to the others, so each address gets one probe per interval,
    and hands a worker 0 that replaced a dead one its predecessor's
    verdicts to go on from;
  - rollback: each worker only counts its window; the supervisor adds the
    windows up, judges them once, and tells every worker (and each worker
    it starts later) the verdict.

Workers answer on their private admin socket: C{GET /internal/state} and
C{POST /internal/apply}.  Those paths exist only in workers, never on an
admin listener a network can reach.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from treq.client import HTTPClient
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent
from twisted.web.iweb import IAgentEndpointFactory
from twisted.web.resource import Resource
from twisted.web.server import Request
from zope.interface import implementer

from ._analysis import RollbackGuard
from ._canary import Canary
from ._config import Backend
from ._routing import Router
from ._supervisor import Supervisor

__all__ = ["Coordinator", "WorkerClient", "internal_resource"]

_log = Logger(namespace="sillyproxy.supervisor")

# A worker that takes longer than this to answer its admin is left out.
WORKER_TIMEOUT = 2.0
# How often the supervisor gathers and passes on: within a second, as promised.
ROUND = 0.5


@implementer(IAgentEndpointFactory)
class _WorkerSockets:
    """Reach C{http://worker-N/...} on worker N's admin UNIX socket."""

    def __init__(self, reactor: Any, supervisor: Supervisor) -> None:
        self._reactor = reactor
        self._supervisor = supervisor

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:
        index = int(uri.host.decode("ascii").rsplit("-", 1)[1])
        return UNIXClientEndpoint(self._reactor, self._supervisor.slots[index].admin_path, timeout=2)


class WorkerClient:
    """Asks every running worker the same admin question at once."""

    def __init__(self, reactor: Any, supervisor: Supervisor) -> None:
        self._reactor = reactor
        self._supervisor = supervisor
        self._http = HTTPClient(Agent.usingEndpointFactory(reactor, _WorkerSockets(reactor, supervisor)))

    def pid_of(self, index: int) -> int | None:
        """The pid of worker C{index}'s process now (None while it is being replaced)."""
        return self._supervisor.slots[index].pid

    def ask(
        self, path: str, body: bytes | None = None, only: Sequence[int] | None = None
    ) -> Deferred[list[tuple[int, int, bytes]]]:
        """
        (worker index, status code, body) of each running worker (or each of
        C{only}) that answered in time; with C{body}, a POST of it.
        """
        asked = []
        for slot in self._supervisor.slots:
            if slot.pid is None or (only is not None and slot.index not in only):
                continue
            index = slot.index
            url = f"http://worker-{index}{path}"
            if body is None:
                sent = self._http.get(url, timeout=WORKER_TIMEOUT, reactor=self._reactor)
            else:
                sent = self._http.post(url, data=body, timeout=WORKER_TIMEOUT, reactor=self._reactor)

            def read(response: Any, index: int = index) -> Deferred[tuple[int, int, bytes]]:
                return response.content().addCallback(lambda data: (index, response.code, data))

            asked.append(sent.addCallback(read))
        gathered: Deferred[list[tuple[bool, Any]]] = DeferredList(asked, consumeErrors=True)
        return gathered.addCallback(lambda results: [value for ok, value in results if ok])


# --- The worker's side --------------------------------------------------------


def _state(canary: Canary, router: Router, now: float) -> dict[str, Any]:
    return {
        "windows": {color: list(counts) for color, counts in canary.guard.totals(now).items()},
        "health": {
            backend.color: {
                address.address: address.passing_health_checks
                for address in router.upstreams[backend.color].addresses
            }
            for backend in router.backends
        },
        "rolled_back": dict(canary.rollout.rolled_back),
    }


def _apply(canary: Canary, router: Router, told: Mapping[str, Any]) -> None:
    for color, reason in told.get("rolled_back", {}).items():
        if color not in canary.rollout.rolled_back and router.backend(color) is not None:
            canary.rollout.roll_back(color, reason)
    for color, verdicts in told.get("health", {}).items():
        upstream = router.upstreams.get(color)
        if upstream is None:
            continue
        changed = False
        for address in upstream.addresses:
            passing = verdicts.get(address.address)
            if passing is not None and passing != address.passing_health_checks:
                address.passing_health_checks = passing
                changed = True
        if changed:
            upstream.health_changed()  # type: ignore[attr-defined]


class _Internal(Resource):
    isLeaf = True

    def __init__(self, canary: Canary, router: Router, clock: IReactorTime) -> None:
        super().__init__()
        self._canary = canary
        self._router = router
        self._clock = clock

    def render_GET(self, request: Request) -> bytes:
        if request.postpath != [b"state"]:
            request.setResponseCode(404)
            return b""
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(_state(self._canary, self._router, self._clock.seconds())).encode()

    def render_POST(self, request: Request) -> bytes:
        if request.postpath != [b"apply"]:
            request.setResponseCode(404)
            return b""
        try:
            assert request.content is not None
            told = json.loads(request.content.read())
            _apply(self._canary, self._router, told)
        except (ValueError, AttributeError, TypeError):
            request.setResponseCode(400)
            return b"bad state\n"
        return b"applied\n"


def internal_resource(canary: Canary, router: Router, clock: IReactorTime) -> Resource:
    """A worker's C{/internal/state} and C{/internal/apply}, for its supervisor only."""
    return _Internal(canary, router, clock)


# --- The supervisor's side ------------------------------------------------------


class Coordinator:
    """
    Every half second: gather each worker's windows and worker 0's health
    verdicts, judge the summed windows, and tell every other worker.

    @param backends: the configured colours (for the rollback thresholds).
    """

    def __init__(
        self,
        workers: WorkerClient,
        backends: Sequence[Backend],
        window: float,
        min_requests: int,
        clock: IReactorTime,
    ) -> None:
        self._workers = workers
        self._clock = clock
        # The supervisor's verdicts, and what the workers report they did.
        self.decided: dict[str, str] = {}
        self.rolled_back: dict[str, str] = {}
        # Worker index -> (pid, verdicts) last sent to it.
        self._told: dict[int, tuple[int | None, tuple[str, ...]]] = {}
        # Workers whose last state could not be read (said once each).
        self._confused: set[int] = set()
        # The health verdicts last relayed, and the worker 0 process they
        # came from (or were handed to, when it replaced another).
        self._health: dict[str, dict[str, bool]] | None = None
        self._health_of: int | None = None
        self._guard = RollbackGuard(
            {b.color: b.rollback_error_rate for b in backends if b.rollback_error_rate is not None},
            window,
            min_requests,
            self._roll_back,
        )
        self._loop = LoopingCall(self.round)
        self._loop.clock = clock
        self._busy = False

    def start(self) -> None:
        self._loop.start(ROUND, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def _roll_back(self, color: str, reason: str) -> bool:
        self.decided[color] = reason
        _log.warn("{color} rolled back across the workers: {reason}", color=color, reason=reason)
        return True

    def _parsed(self, results: list[tuple[int, int, bytes]]) -> dict[int, dict[str, Any]]:
        """Each answering worker's state; one that answers nonsense is left out, and said once."""
        states = {}
        for index, code, body in results:
            try:
                if code != 200:
                    raise ValueError(f"status {code}")
                state = json.loads(body)
                windows = {str(c): (int(r), int(f)) for c, (r, f) in state["windows"].items()}
                rolled = {str(c): str(why) for c, why in state["rolled_back"].items()}
                health = {
                    str(c): {str(a): bool(ok) for a, ok in verdicts.items()}
                    for c, verdicts in state["health"].items()
                }
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                if index not in self._confused:
                    self._confused.add(index)
                    _log.warn("worker {index} answered its state badly ({error}); left out", index=index, error=e)
                continue
            self._confused.discard(index)
            states[index] = {"windows": windows, "rolled_back": rolled, "health": health}
        return states

    def round(self) -> Deferred[None] | None:
        if self._busy:
            # The last round still waits on a slow worker.
            return None
        self._busy = True

        def gathered(results: list[tuple[int, int, bytes]]) -> Deferred[Any] | None:
            states = self._parsed(results)
            sums: dict[str, list[int]] = {}
            for state in states.values():
                for color, (requests, failures) in state["windows"].items():
                    total = sums.setdefault(color, [0, 0])
                    total[0] += requests
                    total[1] += failures
            for color, (requests, failures) in sums.items():
                if color not in self.decided:
                    self._guard.judge(color, requests, failures)
            # What the workers did: a worker may refuse a rollback (the last
            # colour with a share), and then the replica has not rolled back.
            self.rolled_back.clear()
            for state in states.values():
                for color, reason in state["rolled_back"].items():
                    self.rolled_back.setdefault(color, reason)
            told: dict[str, Any] = {"rolled_back": self.decided}
            behind = []
            if 0 in states:
                pid = self._workers.pid_of(0)
                if self._health is not None and pid != self._health_of:
                    # A new worker 0 believes every address passes until its
                    # own probes say otherwise: hand it its predecessor's
                    # verdicts, which the others keep meanwhile.
                    self._health_of = pid
                    behind.append(0)
                else:
                    self._health, self._health_of = states[0]["health"], pid
                told["health"] = self._health
            for index, state in states.items():
                pid = self._workers.pid_of(index)
                verdicts = (pid, tuple(sorted(self.decided)))
                # Each verdict once per worker process (it may refuse one).
                new_verdict = set(self.decided) - set(state["rolled_back"]) and self._told.get(index) != verdicts
                stale_health = index != 0 and "health" in told and state["health"] != told["health"]
                if new_verdict or stale_health:
                    self._told[index] = verdicts
                    if index not in behind:
                        behind.append(index)
            if not behind:
                return None
            return self._workers.ask("/internal/apply", json.dumps(told).encode(), only=behind)

        def done(result: object) -> None:
            self._busy = False
            if isinstance(result, Failure):
                _log.failure("coordinating the workers failed", result)

        asked = self._workers.ask("/internal/state").addCallback(gathered)
        asked.addBoth(done)
        return asked
