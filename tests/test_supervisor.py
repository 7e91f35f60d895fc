"""The supervisor in memory: which listeners workers share, restart delays, and the workers' lives with a fake spawn."""

from __future__ import annotations

import os
import signal
import socket
from typing import Any
from unittest import SkipTest

from twisted.internet.error import ProcessExitedAlready
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._config import ConfigError, parse_config
from sillyproxy._supervisor import ListenSocket, Supervisor, parse_tcp_listener, restart_delay
from sillyproxy._worker import watch_parent, worker_role
from sillyproxy.tap import workers_to_run

from .support import TableTests, rows


class ListenerTests(TableTests):
    @rows(
        ("tcp:8080", ListenSocket("tcp:8080", 8080, "", 511)),
        ("tcp:8080:interface=127.0.0.1", ListenSocket("tcp:8080:interface=127.0.0.1", 8080, "127.0.0.1", 511)),
        ("tcp:port=80:backlog=50", ListenSocket("tcp:port=80:backlog=50", 80, "", 50)),
        ("tcp6:8080", ListenSocket("tcp6:8080", 8080, "::", 511)),
        ("tcp6:8080:interface=\\:\\:1", ListenSocket("tcp6:8080:interface=\\:\\:1", 8080, "::1", 511)),
        ("reuseport:9000", ListenSocket("reuseport:9000", 9000, "", 511)),
        ("ssl:8443:privateKey=k.pem", None),
        ("unix:/run/proxy.sock", None),
        ("systemd:domain=INET:index=0", None),
        ("tcp:http", None),
        ("tcp:0", None),
        ("tcp:8080:backlog=lots", None),
    )
    def test_shared_listeners(self, description: str, expected: ListenSocket | None) -> None:
        """If a listen description is plain TCP, then workers can share it (taken apart); any other kind they cannot."""
        self.assertEqual(parse_tcp_listener(description), expected)


class RestartDelayTests(TableTests):
    @rows(
        # A worker that lived a while comes back at once.
        (0.0, 3600.0, 0.5),
        (16.0, 60.0, 0.5),
        # Dying young, again and again: 0.5, 1, 2, ... up to 30 s.
        (0.0, 0.1, 0.5),
        (0.5, 0.1, 1.0),
        (8.0, 2.0, 16.0),
        (16.0, 2.0, 30.0),
        (30.0, 2.0, 30.0),
    )
    def test_backoff(self, previous: float, lived: float, delay: float) -> None:
        """If a worker dies, then it is restarted within a second unless it keeps dying young, when the wait doubles to 30 s."""
        self.assertEqual(restart_delay(previous, lived), delay)


class WorkersToRunTests(TableTests):
    @rows(
        ({"SILLYPROXY_WORKERS": "1"}, "tcp:8080", 1),
        ({"SILLYPROXY_WORKERS": "3"}, "tcp:8080 reuseport:8081", 3),
        ({}, "tcp:8080", 1),
        # One worker serves any listener: TLS and UNIX sockets included.
        ({"SILLYPROXY_WORKERS": "1"}, "unix:/tmp/x.sock", 1),
    )
    def test_count(self, environ: dict[str, str], listen: str, count: int) -> None:
        """If SILLYPROXY_WORKERS is a number, then that many workers run (1: the process serves alone)."""
        config = parse_config({"BLUE": "http://b", "SILLYPROXY_LISTEN": listen, **environ})
        self.assertEqual(workers_to_run(config, None), count)

    def test_unshareable_listener_refused(self) -> None:
        """If several workers are asked for with a UNIX listener, then it is a configuration error naming it."""
        config = parse_config({"BLUE": "http://b", "SILLYPROXY_LISTEN": "tcp:8080 unix:/tmp/x.sock", "SILLYPROXY_WORKERS": "2"})
        caught = self.assertRaises(ConfigError, workers_to_run, config, None)
        self.assertEqual(
            str(caught),
            "SILLYPROXY_WORKERS='2': 2 workers share tcp:, tcp6: and reuseport: listeners only, "
            "not unix:/tmp/x.sock",
        )

    def test_auto_with_an_unshareable_listener_is_one_process(self) -> None:
        """If SILLYPROXY_WORKERS is auto and a listener cannot be shared, then one process serves (a warning says why) rather than refusing to start."""
        config = parse_config({"BLUE": "http://b", "SILLYPROXY_LISTEN": "unix:/tmp/x.sock", "SILLYPROXY_WORKERS": "auto"})
        self.assertEqual(workers_to_run(config, None), 1)

    def test_a_worker_runs_one(self) -> None:
        """If this process is a worker, then it serves alone, whatever SILLYPROXY_WORKERS says."""
        config = parse_config({"BLUE": "http://b", "SILLYPROXY_WORKERS": "4"})
        role = worker_role({"SILLYPROXY_WORKER_FDS": "3", "SILLYPROXY_WORKER_OF": "1234"})
        assert role is not None
        self.assertEqual((role.fds, role.parent), ((3,), 1234))
        self.assertEqual(workers_to_run(config, role), 1)


class _Process:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.signals: list[str] = []
        self.exited = False

    def signalProcess(self, name: str) -> None:
        if self.exited:
            raise ProcessExitedAlready()
        self.signals.append(name)


class _AtOnce:
    """callFromThread that calls at once (the handler runs on this thread anyway)."""

    def callFromThread(self, f: Any, *args: Any, **kwargs: Any) -> None:
        f(*args, **kwargs)


class SupervisorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.now = 1000.0
        self.spawned: list[tuple[Any, list[str], dict[str, str], dict[int, Any]]] = []
        self.processes: list[_Process] = []

        self.refusals = 0

        def spawn(protocol: Any, executable: str, args: list[str], env: dict[str, str], childFDs: dict[int, Any]) -> _Process:
            if self.refusals:
                self.refusals -= 1
                raise OSError("Cannot allocate memory")
            process = _Process(100 + len(self.processes))
            self.spawned.append((protocol, args, env, childFDs))
            self.processes.append(process)
            return process

        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        if hasattr(signal, "SIGHUP"):
            self.addCleanup(signal.signal, signal.SIGHUP, signal.getsignal(signal.SIGHUP))
        self.supervisor = Supervisor(
            2,
            [ListenSocket(f"tcp:{port}", port, "127.0.0.1", 50)],
            ["python", "-m", "twisted", "sillyproxy"],
            {"BLUE": "http://b", "SILLYPROXY_WORKERS": "2"},
            spawn,
            self.clock,
            drain_timeout=8.0,
            wall_clock=lambda: self.now,
            threads=_AtOnce(),
        )
        self.supervisor.startService()
        self.addCleanup(self._stop)

    def _stop(self) -> None:
        if self.supervisor.running:
            self.supervisor.stopService()
            for protocol, *_ in self.spawned:
                if protocol._slot.pid is not None:
                    protocol.processEnded(Failure(Exception("stopped")))

    def test_each_worker_gets_its_own_socket_on_the_port(self) -> None:
        """If two workers start, then each gets a listening socket of its own on the one port, and is told so."""
        self.assertEqual(len(self.spawned), 2)
        ports = set()
        for _, args, env, fds in self.spawned:
            self.assertEqual(env["SILLYPROXY_WORKER_FDS"], "3")
            self.assertEqual(env["SILLYPROXY_WORKERS"], "1")
            self.assertTrue(env["SILLYPROXY_ADMIN_LISTEN"].startswith("unix:"))
            sock = socket.socket(fileno=os.dup(fds[3]))
            ports.add(sock.getsockname())
            sock.close()
        self.assertEqual(len(ports), 1)
        self.assertNotEqual(self.spawned[0][3][3], self.spawned[1][3][3])

    def test_a_dead_worker_is_restarted_with_backoff(self) -> None:
        """If a worker dies young again and again, then it is restarted after 0.5 s, then 1 s, then 2 s."""
        for delay in (0.5, 1.0, 2.0):
            # The newest process: each restart's, once there has been one.
            protocol = self.spawned[-1][0]
            protocol.processEnded(Failure(Exception("killed")))
            count = len(self.spawned)
            self.clock.advance(delay - 0.01)
            self.assertEqual(len(self.spawned), count)
            self.clock.advance(0.01)
            self.assertEqual(len(self.spawned), count + 1)

    def test_a_worker_that_cannot_be_spawned_is_tried_again(self) -> None:
        """If starting a replacement fails (out of memory), then it is tried again later, backing off, not given up."""
        self.refusals = 1
        self.spawned[0][0].processEnded(Failure(Exception("killed")))
        self.clock.advance(0.5)
        self.assertEqual(len(self.spawned), 2)
        self.clock.advance(1.0)
        self.assertEqual(len(self.spawned), 3)
        self.assertIsNotNone(self.supervisor.slots[0].pid)

    def test_a_crash_looping_worker_gives_up_its_share_of_connections(self) -> None:
        """If a worker keeps dying young, then its socket is closed while it waits (its share goes to the others) and opened afresh for the next try."""
        slot = self.supervisor.slots[0]
        port = slot.sockets[0].getsockname()[1]
        self.spawned[0][0].processEnded(Failure(Exception("killed")))
        self.assertEqual(len(slot.sockets), 1)
        self.clock.advance(0.5)
        self.spawned[-1][0].processEnded(Failure(Exception("killed")))
        self.assertEqual(slot.sockets, [])
        self.clock.advance(1.0)
        self.assertEqual([sock.getsockname()[1] for sock in slot.sockets], [port])
        self.assertEqual(self.spawned[-1][3][3], slot.sockets[0].fileno())

    def test_stop_with_a_worker_already_reaped(self) -> None:
        """If a worker has exited but its end is not reported yet when the stop comes, then the others still get SIGTERM and the stop waits for both."""
        self.processes[0].exited = True
        stopped = self.supervisor.stopService()
        self.assertEqual(self.processes[1].signals, ["TERM"])
        self.spawned[0][0].processEnded(Failure(Exception("exited")))
        self.spawned[1][0].processEnded(Failure(Exception("exited")))
        self.successResultOf(stopped)

    def test_sighup_goes_to_every_worker(self) -> None:
        """If the supervisor gets SIGHUP (reload certificates), then it survives and passes it on to every worker."""
        if not hasattr(signal, "SIGHUP"):
            raise SkipTest("no SIGHUP on this platform")
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertEqual([p.signals for p in self.processes], [["HUP"], ["HUP"]])

    def test_stop_sends_sigterm_and_waits_for_every_worker(self) -> None:
        """If the supervisor stops, then every worker gets SIGTERM and the stop ends once all have exited, and no one is restarted."""
        stopped = self.supervisor.stopService()
        self.assertEqual([p.signals for p in self.processes], [["TERM"], ["TERM"]])
        self.assertNoResult(stopped)
        self.spawned[0][0].processEnded(Failure(Exception("exited")))
        self.assertNoResult(stopped)
        self.spawned[1][0].processEnded(Failure(Exception("exited")))
        self.successResultOf(stopped)
        self.clock.advance(60)
        self.assertEqual(len(self.spawned), 2)

    def test_stop_lets_go_of_the_sockets_at_once(self) -> None:
        """If the stop begins, then the supervisor closes its copies of the sockets at once, so that the kernel queues no connection nobody will accept."""
        port = self.supervisor.slots[0].sockets[0].getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        self.supervisor.stopService()
        # The fake workers hold no copies: nothing listens any more.
        self.assertRaises(ConnectionRefusedError, socket.create_connection, ("127.0.0.1", port), 5)

    def test_a_worker_that_does_not_drain_is_killed(self) -> None:
        """If a worker has not exited by the drain timeout plus 5 s, then it gets SIGKILL."""
        self.supervisor.stopService()
        self.spawned[0][0].processEnded(Failure(Exception("exited")))
        self.clock.advance(12.9)
        self.assertEqual(self.processes[1].signals, ["TERM"])
        self.clock.advance(0.1)
        self.assertEqual(self.processes[1].signals, ["TERM", "KILL"])


class WatchParentTests(SynchronousTestCase):
    def test_stops_when_the_supervisor_is_gone(self) -> None:
        """If the worker's parent changes (the supervisor died), then it is told within a second, once."""
        clock = Clock()
        parents = [50]
        gone: list[bool] = []
        watch_parent(clock, 50, lambda: gone.append(True), getppid=lambda: parents[0])
        clock.advance(5)
        self.assertEqual(gone, [])
        parents[0] = 1
        clock.advance(1)
        clock.advance(5)
        self.assertEqual(gone, [True])
