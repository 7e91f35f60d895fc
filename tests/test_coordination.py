"""The supervisor's coordination of its workers, with fake workers: summed rollback windows, verdicts told once, health relayed from worker 0."""

from __future__ import annotations

import json
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._coordination import Coordinator

from .support import backend


class _Workers:
    """Answers /internal/state with each worker's scripted state, and records what is applied."""

    def __init__(self) -> None:
        self.states: dict[int, dict[str, Any]] = {}
        self.pids = {0: 100, 1: 101}
        self.applied: list[tuple[int, dict[str, Any]]] = []

    def pid_of(self, index: int) -> int | None:
        return self.pids.get(index)

    def ask(self, path: str, body: bytes | None = None, only: Any = None) -> Deferred[list[tuple[int, int, bytes]]]:
        if path == "/internal/state":
            return succeed([(i, 200, json.dumps(s).encode()) for i, s in self.states.items()])
        told = json.loads(body or b"{}")
        for index in only:
            self.applied.append((index, told))
        return succeed([(index, 200, b"applied\n") for index in only])


def _state(requests: int, failures: int, rolled_back: dict[str, str] | None = None, up: bool = True) -> dict[str, Any]:
    return {
        "windows": {"green": [requests, failures]},
        "rolled_back": rolled_back or {},
        "health": {"blue": {"10.0.0.1": up}, "green": {"10.0.0.2": True}},
    }


class CoordinatorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.workers = _Workers()
        green = attrs.evolve(backend("green", "http://g", 1), rollback_error_rate=0.2)
        self.coordinator = Coordinator(
            self.workers,  # type: ignore[arg-type]
            [backend("blue", "http://b", 1), green],
            30.0,
            20,
            Clock(),
        )

    def test_windows_are_judged_summed(self) -> None:
        """If neither worker alone has the minimum of requests but both together do, then the supervisor decides the rollback and tells both."""
        self.workers.states = {0: _state(12, 12), 1: _state(12, 12)}
        self.coordinator.round()
        self.assertIn("(24 of 24 requests failed)", self.coordinator.decided["green"])
        self.assertEqual(sorted(i for i, _ in self.workers.applied), [0, 1])
        self.assertEqual(self.workers.applied[0][1]["rolled_back"], self.coordinator.decided)

    def test_too_few_requests_in_every_worker_together(self) -> None:
        """If the workers' windows add up to less than the minimum, then nothing is decided."""
        self.workers.states = {0: _state(9, 9), 1: _state(9, 9)}
        self.coordinator.round()
        self.assertEqual((self.coordinator.decided, self.workers.applied), ({}, []))

    def test_a_verdict_is_told_once_per_worker_process(self) -> None:
        """If a worker refuses a rollback (the last colour with a share), then it is not told again every round, and the replica does not count as rolled back; a new process of it is told."""
        self.workers.states = {0: _state(30, 30), 1: _state(30, 30)}
        self.coordinator.round()
        self.coordinator.round()
        self.assertEqual(len(self.workers.applied), 2)
        self.assertEqual(self.coordinator.rolled_back, {})
        self.workers.pids[1] = 201
        self.coordinator.round()
        self.assertEqual([i for i, _ in self.workers.applied], [0, 1, 1])

    def test_what_the_workers_did_is_what_the_replica_reports(self) -> None:
        """If the workers report the rollback done, then the supervisor reports it and tells no one again."""
        done = {"green": "error rate 1.000"}
        self.workers.states = {0: _state(30, 30, done), 1: _state(30, 30, done)}
        self.coordinator.round()
        self.assertEqual(self.coordinator.rolled_back, done)

    def test_health_comes_from_worker_0(self) -> None:
        """If worker 0's probes took an address out, then the other workers are told, and worker 0 is not."""
        self.workers.states = {0: _state(0, 0, up=False), 1: _state(0, 0, up=True)}
        self.coordinator.round()
        self.assertEqual([i for i, _ in self.workers.applied], [1])
        self.assertEqual(self.workers.applied[0][1]["health"]["blue"], {"10.0.0.1": False})

    def test_a_new_worker_0_inherits_its_predecessors_health(self) -> None:
        """
        If worker 0 is replaced after its probes took an address out, then
        the new worker 0 (which believes every address passes until its own
        probes say otherwise) is told the old verdicts, and the other
        workers keep them; from then on the new worker 0's verdicts are
        relayed.
        """
        self.workers.states = {0: _state(0, 0, up=False), 1: _state(0, 0, up=False)}
        self.coordinator.round()
        self.workers.pids[0] = 200
        self.workers.states = {0: _state(0, 0, up=True), 1: _state(0, 0, up=False)}
        self.coordinator.round()
        self.assertEqual([i for i, _ in self.workers.applied], [0])
        self.assertEqual(self.workers.applied[0][1]["health"]["blue"], {"10.0.0.1": False})
        # The new worker 0 now probes for itself; its verdicts are relayed.
        self.workers.states = {0: _state(0, 0, up=True), 1: _state(0, 0, up=False)}
        self.coordinator.round()
        self.assertEqual([i for i, _ in self.workers.applied], [0, 1])
        self.assertEqual(self.workers.applied[1][1]["health"]["blue"], {"10.0.0.1": True})

    def test_a_worker_answering_nonsense_is_left_out(self) -> None:
        """If a worker's state cannot be read, then the others are still judged and told."""
        self.workers.states = {0: {"windows": "nonsense"}, 1: _state(30, 30)}
        self.coordinator.round()
        self.assertIn("(30 of 30 requests failed)", self.coordinator.decided["green"])
        self.assertEqual([i for i, _ in self.workers.applied], [1])
