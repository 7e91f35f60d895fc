"""
A worker's side of SILLYPROXY_WORKERS: listening on the sockets its
supervisor opened and passed down, and leaving when the supervisor is gone.

The supervisor runs each worker as the same plugin with three variables of
its own: C{SILLYPROXY_WORKER_FDS} (the descriptors of the listening
sockets, one per listen description, in order) and C{SILLYPROXY_WORKER_OF}
(the supervisor's pid) and C{SILLYPROXY_WORKER_INDEX} (its place, from 0:
worker 0 is the one that runs the active health checks).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorSocket,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

__all__ = [
    "FDS_VARIABLE",
    "INDEX_VARIABLE",
    "PARENT_VARIABLE",
    "AdoptedEndpoint",
    "WorkerRole",
    "watch_parent",
    "worker_role",
]

FDS_VARIABLE = "SILLYPROXY_WORKER_FDS"
PARENT_VARIABLE = "SILLYPROXY_WORKER_OF"
INDEX_VARIABLE = "SILLYPROXY_WORKER_INDEX"

_log = Logger(namespace="sillyproxy.worker")


@implementer(IStreamServerEndpoint)
class AdoptedEndpoint:
    """Serve on a listening socket this process was given, by its descriptor."""

    def __init__(self, reactor: IReactorSocket, fd: int) -> None:
        self._reactor = reactor
        self._fd = fd

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        try:
            probe = socket.socket(fileno=os.dup(self._fd))
            family = probe.family
            probe.close()
            port = self._reactor.adoptStreamPort(self._fd, family, protocolFactory)  # type: ignore[arg-type]
            # adoptStreamPort took its own copy; this one would keep the
            # socket open after the port closes, and the drain relies on
            # the close to stop new connections.
            os.close(self._fd)
        except Exception as e:
            return fail(e)
        return succeed(port)


class WorkerRole:
    """What a worker was told by its supervisor."""

    def __init__(self, fds: tuple[int, ...], parent: int, index: int = 0) -> None:
        self.fds = fds
        self.parent = parent
        self.index = index


def worker_role(environ: Mapping[str, str]) -> WorkerRole | None:
    """The worker's role, if this process is one (None: a supervisor, or a single process)."""
    fds, parent = environ.get(FDS_VARIABLE, ""), environ.get(PARENT_VARIABLE, "")
    if not fds or not parent.isdigit():
        return None
    index = environ.get(INDEX_VARIABLE, "0")
    return WorkerRole(
        tuple(int(fd) for fd in fds.split(",")), int(parent), int(index) if index.isdigit() else 0
    )


def watch_parent(
    clock: IReactorTime, parent: int, gone: Callable[[], None], getppid: Callable[[], int] = os.getppid
) -> LoopingCall:
    """
    Call C{gone} once the supervisor is no longer this process's parent (it
    died, even by SIGKILL, and the worker was handed to init), checking
    every second: a worker must not serve on without the supervisor that
    restarts, drains and reports it.
    """

    def check() -> None:
        if getppid() != parent:
            _log.warn("the supervisor (pid {pid}) is gone; stopping", pid=parent)
            watching.stop()
            gone()

    watching = LoopingCall(check)
    watching.clock = clock
    watching.start(1.0, now=False)
    return watching
