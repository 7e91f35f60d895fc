"""
SILLYPROXY_WORKERS above 1: a supervisor that opens the listening sockets,
runs one worker process per CPU on them, restarts a worker that dies, and
drains them all on SIGTERM.

Each worker gets, for each listen description, a socket of its own bound
with SO_REUSEPORT to the same address, so the kernel spreads connections
over the workers by a hash of each connection's addresses.  The supervisor
keeps every socket open: while a dead worker is being replaced, the
connections the kernel hashed to its socket wait in that socket's queue
for the new worker instead of being refused.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import define, frozen
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IReactorFromThreads,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Site

from ._compat import clear_exit_signal
from ._lifecycle import listen_or_exit
from ._reuseport import reuseport_socket
from ._worker import FDS_VARIABLE, INDEX_VARIABLE, PARENT_VARIABLE

__all__ = [
    "ListenSocket",
    "Supervisor",
    "WorkerSlot",
    "parse_tcp_listener",
    "restart_delay",
]

_log = Logger(namespace="sillyproxy.supervisor")

# A worker that lived this long was not crash-looping: it is restarted at once.
STABLE_AFTER = 10.0
FIRST_DELAY = 0.5
MAX_DELAY = 30.0
# Beyond the drain timeout, how long workers get to exit before SIGKILL.
EXIT_GRACE = 5.0

_UNESCAPED_COLON = re.compile(r"(?<!\\):")


@frozen
class ListenSocket:
    """A TCP listen description taken apart: what each worker's socket binds."""

    description: str
    port: int
    interface: str
    backlog: int


def parse_tcp_listener(description: str) -> ListenSocket | None:
    """
    A C{tcp:}, C{tcp6:} or C{reuseport:} description (C{tcp:8080:interface=127.0.0.1:backlog=50}),
    or None for any other kind, which workers cannot share (TLS, UNIX sockets, systemd, port 0).
    Every worker's socket has SO_REUSEPORT, even for C{tcp:}: so a second
    proxy on the same port starts and shares it, rather than failing.
    """
    parts = [part.replace("\\:", ":") for part in _UNESCAPED_COLON.split(description.strip())]
    kind = parts[0].lower()
    if kind not in ("tcp", "tcp6", "reuseport"):
        return None
    positional = [p for p in parts[1:] if "=" not in p]
    options = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    port_text = positional[0] if positional else options.get("port", "")
    if not port_text.isdigit() or not options.get("backlog", "511").isdigit():
        return None
    if int(port_text) == 0:
        # Any free port: each worker would get a different one.
        return None
    interface = options.get("interface", "::" if kind == "tcp6" else "")
    return ListenSocket(
        description,
        int(port_text),
        interface,
        int(options.get("backlog", "511")),
    )


def restart_delay(previous: float, lived: float) -> float:
    """
    How long to wait before restarting a worker that died after C{lived}
    seconds, its previous delay having been C{previous}: at once (well
    within a second) after a stable life, doubling up to 30 s while it
    keeps dying young.
    """
    if lived >= STABLE_AFTER:
        return FIRST_DELAY
    return min(MAX_DELAY, max(FIRST_DELAY, previous * 2))


def _listening_socket(spec: ListenSocket) -> socket.socket:
    # tcp6 binds "::" when no interface is given: an IPv6 socket either way.
    sock = reuseport_socket(spec.interface, spec.port, spec.backlog)
    # Passed to the workers at spawn, explicitly: never by accident elsewhere.
    sock.set_inheritable(False)
    return sock


@define
class WorkerSlot:
    """One worker's place: its sockets, and the process filling it now."""

    index: int
    sockets: list[socket.socket]
    admin_path: str
    pid: int | None = None
    started: float = 0.0
    delay: float = 0.0
    restart: IDelayedCall | None = None
    process: Any = None


_FIRST_FD = 3


def _signal(slot: WorkerSlot, name: str) -> None:
    """Signal the slot's worker, if it has one that has not already exited."""
    if slot.process is None:
        return
    try:
        slot.process.signalProcess(name)
    except ProcessExitedAlready:
        # Reaped, its processEnded still to come: nothing to signal.
        pass


class _WorkerProtocol(ProcessProtocol):
    def __init__(self, supervisor: Supervisor, slot: WorkerSlot) -> None:
        self._supervisor = supervisor
        self._slot = slot

    def processEnded(self, reason: Failure) -> None:
        self._supervisor.worker_ended(self._slot, reason)


class Supervisor(Service):
    """
    Runs C{count} workers on shared listening sockets, restarts them, and
    on stop sends each SIGTERM and waits until all have exited.

    @param command: the worker's command line, without the listen sockets
        (given by environment).
    @param environ: the workers' environment (the supervisor's own).
    @param spawn: C{IReactorProcess.spawnProcess}.
    """

    def __init__(
        self,
        count: int,
        listeners: Sequence[ListenSocket],
        command: Sequence[str],
        environ: Mapping[str, str],
        spawn: Callable[..., Any],
        clock: IReactorTime,
        drain_timeout: float,
        admin: tuple[IStreamServerEndpoint, Site] | None = None,
        wall_clock: Callable[[], float] = time.time,
        threads: IReactorFromThreads | None = None,
    ) -> None:
        self._threads = threads
        # Told once the workers are started, and when the stop begins.
        self.on_start: Callable[[], None] = lambda: None
        self.on_stop: Callable[[], None] = lambda: None
        self._count = count
        self._listeners = tuple(listeners)
        self._command = list(command)
        self._environ = dict(environ)
        self._spawn = spawn
        self._clock = clock
        self._drain_timeout = drain_timeout
        self.admin = admin
        self._wall_clock = wall_clock
        self.slots: list[WorkerSlot] = []
        self.admin_port: IListeningPort | None = None
        self._stopping = False
        self._all_ended: Deferred[None] | None = None
        self._runtime = ""
        self._null = os.open(os.devnull, os.O_RDONLY)

    @property
    def stopping(self) -> bool:
        """Whether the workers are being drained (SIGTERM or SIGINT came)."""
        return self._stopping

    def privilegedStartService(self) -> None:
        # Before the reactor runs, as for a single process: a port in use
        # ends start-up with a clear message.
        self._open_sockets()
        super().privilegedStartService()

    def _open_sockets(self) -> None:
        if self.slots:
            return
        try:
            # The workers' private admin sockets (mode 700: the supervisor's only).
            self._runtime = tempfile.mkdtemp(prefix="sillyproxy-workers-")
        except OSError as e:
            sys.stderr.write(
                f"sillyproxy: cannot make a directory for the workers' admin sockets "
                f"(set TMPDIR to a writable directory): {e}\n"
            )
            raise SystemExit(1) from None
        try:
            for index in range(self._count):
                sockets = [_listening_socket(spec) for spec in self._listeners]
                admin = str(Path(self._runtime) / f"worker-{index}.sock")
                self.slots.append(WorkerSlot(index, sockets, admin))
        except OSError as e:
            self._cleanup()
            sys.stderr.write(f"sillyproxy: cannot listen: {e}\n")
            raise SystemExit(1) from None

    def startService(self) -> None:
        self._open_sockets()
        super().startService()
        if self.admin is not None and self.admin_port is None:
            self.admin_port = listen_or_exit(*self.admin, "the admin listener")
        _log.info(
            "sillyproxy supervisor listening on {listen} with {count} workers",
            listen=" ".join(spec.description for spec in self._listeners),
            count=self._count,
        )
        for slot in self.slots:
            self._start(slot)
        self._pass_on_sighup()
        self.on_start()

    def _pass_on_sighup(self) -> None:
        """
        SIGHUP (reload the certificates) goes to every worker, on the
        reactor's turn; left alone, it would end the supervisor, and with
        it the replica.
        """
        threads = self._threads
        if threads is None or not hasattr(signal, "SIGHUP"):
            return

        def forward() -> None:
            for slot in self.slots:
                _signal(slot, "HUP")

        def hangup(signum: int, frame: object) -> None:
            threads.callFromThread(forward)

        signal.signal(signal.SIGHUP, hangup)

    def _start(self, slot: WorkerSlot) -> None:
        slot.restart = None
        if self._stopping:
            return
        try:
            if not slot.sockets:
                # Closed while the worker crash-looped: bind afresh.
                slot.sockets = [_listening_socket(spec) for spec in self._listeners]
            slot.process = self._spawn(
                _WorkerProtocol(self, slot),
                self._command[0],
                self._command,
                env=self._worker_environ(slot),
                childFDs=self._child_fds(slot),
            )
        except Exception as e:
            # No process (out of memory, a port taken meanwhile): as good as
            # a worker that died at once, so it is tried again, backing off.
            slot.process = None
            slot.started = self._wall_clock()
            self.worker_ended(slot, Failure(e))
            return
        slot.pid = slot.process.pid
        slot.started = self._wall_clock()
        _log.info("worker {index} started (pid {pid})", index=slot.index, pid=slot.pid)

    def _child_fds(self, slot: WorkerSlot) -> dict[int, Any]:
        # Standard input from /dev/null: a pipe would delay processEnded
        # until it closed, after the process itself is gone.
        child_fds: dict[int, Any] = {0: self._null, 1: 1, 2: 2}
        for offset, sock in enumerate(slot.sockets):
            child_fds[_FIRST_FD + offset] = sock.fileno()
        return child_fds

    def _worker_environ(self, slot: WorkerSlot) -> dict[str, str]:
        environ = dict(self._environ)
        environ[FDS_VARIABLE] = ",".join(str(_FIRST_FD + i) for i in range(len(slot.sockets)))
        environ[PARENT_VARIABLE] = str(os.getpid())
        environ[INDEX_VARIABLE] = str(slot.index)
        environ["SILLYPROXY_WORKERS"] = "1"
        # Colons end a field of an endpoint description: escape those of TMPDIR.
        path = slot.admin_path.replace("\\", "\\\\").replace(":", "\\:")
        environ["SILLYPROXY_ADMIN_LISTEN"] = f"unix:{path}:mode=600"
        if os.path.exists(slot.admin_path):
            # A dead worker's socket file: the new one binds afresh.
            os.unlink(slot.admin_path)
        return environ

    def worker_ended(self, slot: WorkerSlot, reason: Failure) -> None:
        lived = self._wall_clock() - slot.started
        pid, slot.pid, slot.process = slot.pid, None, None
        if self._stopping:
            _log.info("worker {index} (pid {pid}) has exited", index=slot.index, pid=pid)
            if all(s.pid is None for s in self.slots) and self._all_ended is not None:
                ended, self._all_ended = self._all_ended, None
                ended.callback(None)
            return
        slot.delay = restart_delay(slot.delay, lived)
        if slot.delay > FIRST_DELAY:
            # Crash-looping: the kernel would go on handing this socket its
            # share of new connections, to wait for a worker that may be 30 s
            # away.  Closed, its share goes to the other workers.
            for sock in slot.sockets:
                sock.close()
            slot.sockets = []
        _log.warn(
            "worker {index} (pid {pid}) died after {lived:.1f}s ({why}); restarting in {delay:g}s",
            index=slot.index,
            pid=pid,
            lived=lived,
            why=reason.getErrorMessage(),
            delay=slot.delay,
        )
        slot.restart = self._clock.callLater(slot.delay, self._start, slot)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._stopping = True
        self.on_stop()
        for slot in self.slots:
            if slot.restart is not None and slot.restart.active():
                slot.restart.cancel()
            slot.restart = None
        running = [slot for slot in self.slots if slot.process is not None]
        _log.info("draining: {count} worker(s)", count=len(running))
        if not running:
            self._cleanup()
            clear_exit_signal(self._clock)
            return succeed(None)
        ended: Deferred[None] = Deferred()
        self._all_ended = ended
        for slot in running:
            _signal(slot, "TERM")
        # The workers hold their own copies: each socket closes when its
        # worker, having drained the accept queue, closes it.  Kept open
        # here, the kernel would go on queueing connections on it that
        # nobody accepts, and drop them at the end.
        self._close_sockets()
        # A worker drains within the drain timeout and exits; one that does
        # not is killed, so the supervisor always ends.
        kill = self._clock.callLater(self._drain_timeout + EXIT_GRACE, self._kill_the_rest)

        def done(result: None) -> None:
            if kill.active():
                kill.cancel()
            self._cleanup()
            # Every worker drained: a clean stop, exit 0 (as one process does).
            clear_exit_signal(self._clock)

        ended.addCallback(done)
        return ended

    def _kill_the_rest(self) -> None:
        for slot in self.slots:
            if slot.process is not None:
                _log.warn("worker {index} (pid {pid}) did not exit; killing it", index=slot.index, pid=slot.pid)
                _signal(slot, "KILL")

    def _close_sockets(self) -> None:
        for slot in self.slots:
            for sock in slot.sockets:
                sock.close()
            slot.sockets = []

    def _cleanup(self) -> None:
        self._close_sockets()
        if self._null >= 0:
            os.close(self._null)
            self._null = -1
        if self._runtime:
            for entry in Path(self._runtime).glob("*"):
                entry.unlink(missing_ok=True)
            Path(self._runtime).rmdir()
            self._runtime = ""

