"""Start the proxy, and on SIGTERM drain it without dropping a request."""

from __future__ import annotations

import gc
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, Union

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.internet.interfaces import (
    IListeningPort,
    IReactorFromThreads,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.logger import Logger

from twisted.web.server import Site

from ._compat import clear_exit_signal
from ._routing import Upstream
from ._site import ProxySite
from ._transport import drain_accept_queue

__all__ = ["ProxyService", "listen_or_exit", "tune_garbage_collector"]

_log = Logger(namespace="sillyproxy")

# What signal.signal returns: a handler, SIG_DFL/SIG_IGN, or None.
_SignalHandler = Union[Callable[[int, Union[FrameType, None]], Any], int, signal.Handlers, None]

def tune_garbage_collector() -> None:
    """
    Take what start-up built, which lives as long as the process, out of
    the sight of CPython's cyclic collector (gc.freeze), so that its
    collections no longer walk Twisted's and the proxy's long-lived objects.
    The young generation keeps its default threshold: a higher one lets
    garbage from in-flight requests reach the older generations, and memory
    grows with connections.  PyPy's collector is tuned with its PYPY_GC_*
    variables instead.  Figures: docs/performance.md.
    """
    if not hasattr(gc, "freeze"):
        return
    gc.collect()
    gc.freeze()


def listen_or_exit(endpoint: IStreamServerEndpoint, factory: Site, what: str) -> IListeningPort:
    """
    Listen at once (endpoints that listen synchronously, as TCP, TLS and
    UNIX ones do), or end start-up with exit status 1 and the reason.
    """
    ports: list[IListeningPort] = []
    failures: list[object] = []
    endpoint.listen(factory).addCallbacks(ports.append, failures.append)
    if failures:
        sys.stderr.write(
            f"sillyproxy: cannot listen on {what}: "
            f"{failures[0].getErrorMessage()}\n"  # type: ignore[attr-defined]
        )
        raise SystemExit(1)
    return ports[0]


class ProxyService(Service):
    """
    Listens on every endpoint with the one site, resolves the backends and
    logs the routing table at start; on stop (SIGTERM or SIGINT through
    twistd), drains:

      1. stop accepting on every endpoint: take what the kernel already
         queued, then close the listening sockets;
      2. from now on, every response says C{Connection: close};
      3. close idle keep-alive connections;
      4. let in-flight requests finish for up to C{drain_timeout} seconds,
         then abort what is left and log each aborted request;
      5. close the backend pools.

    @param endpoints: each endpoint to listen on, with its description
        (for the log and error messages).
    @param on_started: called once the service has started (in production,
        L{tune_garbage_collector}).
    @param on_sighup: called, through C{threads.callFromThread}, on each
        SIGHUP from start until the drain has finished (in production,
        re-reading the TLS certificates).  Needs C{threads}.
    """

    def __init__(
        self,
        endpoints: Sequence[tuple[IStreamServerEndpoint, str]],
        site: ProxySite,
        upstreams: Sequence[Upstream],
        drain_timeout: float,
        clock: IReactorTime,
        routing: Sequence[str] = (),
        admin: tuple[IStreamServerEndpoint, Site] | None = None,
        on_started: Callable[[], None] = lambda: None,
        on_sighup: Callable[[], object] | None = None,
        threads: IReactorFromThreads | None = None,
    ) -> None:
        self._on_started = on_started
        self._endpoints = list(endpoints)
        self._site = site
        self._upstreams = list(upstreams)
        self._drain_timeout = drain_timeout
        self._clock = clock
        self._routing = list(routing)
        self._admin = admin
        self._on_sighup = on_sighup
        self._threads = threads
        # The SIGHUP handler found at start, to put back after the drain.
        self._previous_sighup: _SignalHandler | None = None
        self._sighup_installed = False
        # One per endpoint, in the same order, once listening.
        self.ports: list[IListeningPort] = []
        self.admin_port: IListeningPort | None = None

    def privilegedStartService(self) -> None:
        # twistd calls this before the reactor runs, so a port in use ends
        # start-up with a clear message instead of a running proxy that
        # serves nothing.
        self._listen_all()
        super().privilegedStartService()

    def _listen_all(self) -> None:
        if not self.ports:
            self.ports = [
                listen_or_exit(endpoint, self._site, description)
                for endpoint, description in self._endpoints
            ]
        if self._admin is not None and self.admin_port is None:
            self.admin_port = listen_or_exit(*self._admin, "the admin listener")

    def _install_sighup(self) -> None:
        """
        Call C{on_sighup} on SIGHUP, on the reactor's turn (callFromThread,
        as the reactor's own SIGTERM handler does), not in the middle of
        whatever the signal interrupted.  twistd and twist leave SIGHUP
        alone (twistd reopens its log file on SIGUSR1), so without this
        SIGHUP ends the process.
        """
        on_sighup, threads = self._on_sighup, self._threads
        if on_sighup is None or threads is None or self._sighup_installed:
            return
        if not hasattr(signal, "SIGHUP"):
            return

        def hangup(signum: int, frame: FrameType | None) -> None:
            threads.callFromThread(on_sighup)

        self._previous_sighup = signal.signal(signal.SIGHUP, hangup)
        self._sighup_installed = True

    def _remove_sighup(self) -> None:
        if not self._sighup_installed:
            return
        previous = self._previous_sighup
        # None: a handler not installed from Python; the default is the nearest.
        signal.signal(signal.SIGHUP, signal.SIG_DFL if previous is None else previous)
        self._sighup_installed = False

    def startService(self) -> None:
        # `twist` never calls privilegedStartService; it calls this before
        # the reactor runs, which serves as well.
        self._listen_all()
        super().startService()
        self._install_sighup()
        _log.info(
            "sillyproxy listening on {listen}",
            listen=" ".join(description for _, description in self._endpoints),
        )
        for line in self._routing:
            _log.info("route: {line}", line=line)
        for upstream in self._upstreams:
            upstream.start()
        self._on_started()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        site = self._site
        site.draining = True
        _log.info(
            "draining: {count} connection(s) open, up to {timeout}s to finish",
            count=len(site.channels),
            timeout=self._drain_timeout,
        )
        deadline = self._clock.callLater(self._drain_timeout, self._abort_the_rest)
        # Our TCP ports drain again at the moment they close; this covers
        # any other listening port (unix sockets reset their queue too).
        for port in self.ports:
            drain_accept_queue(port)
        # Fires once every socket is closed, by which time the connections
        # that queued meanwhile have been accepted too.
        closed = gatherResults(
            [maybeDeferred(port.stopListening) for port in self.ports], consumeErrors=True
        )

        def close_idle(_: object) -> Deferred[None]:
            for channel in list(site.channels):
                if channel.busy:
                    channel.persistent = False
                    for request in channel.requests:
                        if not request.startedWriting:
                            request.responseHeaders.setRawHeaders(b"connection", [b"close"])
                else:
                    channel.loseConnection()
            all_closed: Deferred[None] = Deferred()
            site.when_no_channels(lambda: all_closed.callback(None))
            return all_closed

        def stop_upstreams(_: object) -> Deferred[list[None]]:
            if deadline.active():
                deadline.cancel()
            return gatherResults([upstream.stop() for upstream in self._upstreams])

        return (
            closed.addCallback(close_idle)
            .addCallback(stop_upstreams)
            .addCallback(self._drained)
        )

    def _drained(self, _: object) -> Deferred[None]:
        _log.info("drained")
        # A completed drain is a clean stop, so exit 0 rather than with the
        # signal: scripts and supervisors then do not count the rollout as
        # a crash.
        clear_exit_signal(self._clock)
        # Kept through the drain: a certificate renewed meanwhile still
        # loads, and a SIGHUP does not end the process mid-drain.
        self._remove_sighup()
        # The admin listener stays up through the drain, so /readyz can say 503.
        if self.admin_port is not None:
            return maybeDeferred(self.admin_port.stopListening).addCallback(lambda _: None)
        return succeed(None)

    def _abort_the_rest(self) -> None:
        for channel in list(self._site.channels):
            for request in channel.requests:
                _log.warn(
                    "drain deadline: aborting {method} {uri} from {client}",
                    method=request.method.decode("ascii", "replace"),
                    uri=request.uri.decode("ascii", "backslashreplace"),
                    client=getattr(request.getClientAddress(), "host", "-"),
                )
            tunnel = getattr(channel, "tunnel", None)
            if tunnel is not None:
                # Logged as ended by the drain, not by the client.
                tunnel.close("drain")
            channel.transport.abortConnection()
