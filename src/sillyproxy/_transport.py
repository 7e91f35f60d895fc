"""
TCP transports that skip two rounds of epoll bookkeeping per proxied request.

They subclass twisted.internet.tcp's private classes and rely on their
private state (checked against Twisted 25.5.0 to 26.10.0, pinned by
C{tests/test_compat.py}):
  - C{Connection._tempDataBuffer} / C{_tempDataLen} (what C{write} holds
    until C{doWrite}), C{dataBuffer}, C{_writeDisconnected},
    C{_writeDisconnecting} and C{TLS};
  - C{Port._fromListeningDescriptor(reactor, fd, addressFamily, factory)},
    C{Port.transport}, C{Connector._makeTransport()} and
    C{Client(host, port, bindAddress, connector, reactor)}.
C{SILLYPROXY_FAST_TRANSPORT=0} leaves them out (Twisted's own transports).
"""

from __future__ import annotations

import platform
import select
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from twisted.internet import tcp
from twisted.internet.interfaces import IReactorTime
from twisted.python import log
from twisted.python.failure import Failure

if TYPE_CHECKING:
    # What the mixin below is mixed into, so that its use of the
    # transport's state is type-checked.
    _TCPConnection = tcp.Connection
else:
    _TCPConnection = object

__all__ = ["FastTCPReactor", "drain_accept_queue", "install_fast_poll"]


class _Batch:
    """Transports written to in this reactor iteration, to send once it has handled every event."""

    corked: list[_FewerSyscalls] = []
    flush_scheduled = False
    # Set while the fast poll (install_fast_poll) handles a poll's events:
    # it sends the batch itself once they are done, with no timed call.
    polling = False


def _send_all_corked() -> None:
    _Batch.flush_scheduled = False
    corked, _Batch.corked = _Batch.corked, []
    for transport in corked:
        transport._send_corked()


# Past this much pending data a transport goes twisted's buffered way, so
# its producer is paused as usual.  It must hold a whole backend read (see
# _FastClient), or every chunk of a large body would take the buffered way:
# a poll round and two epoll_ctl calls each.
_CORK_LIMIT = 256 * 1024
# This much waiting on one transport is sent at once, not at the
# iteration's end.
_SEND_AT_ONCE = 32 * 1024


class _FewerSyscalls(_TCPConnection):
    """
    Mixed into twisted's TCP transports to cut per-request system calls.

    Batched, direct sends: twisted buffers every write, registers the socket
    for writability, sends when epoll reports it writable, and unregisters
    it: two epoll_ctl calls and a poll round per response.  Here, what a
    transport is given during a reactor iteration (a request to forward, a
    response to relay: headers and body together) is sent in one send()
    once the iteration has handled every ready socket.  Only what the
    kernel does not take (or any error, which the reactor then reports as
    usual) goes twisted's way.  Sending at the end of the iteration rather
    than after each read matters: the peers on loopback are woken once per
    burst instead of once per send (measured against sending after each
    read: about 35 µs less system time per proxied request, and 13-30 %
    more requests/s).

    Lazy pauses: Agent pauses a backend socket when the response headers
    arrive and resumes it a moment later, in the same call stack, when the
    body's consumer is attached, and twisted.web pauses a client socket
    while its request is served.  A pause here takes effect when the socket
    is next readable, so a pause undone before then costs nothing.
    """

    _pause_pending = False
    _corked = False

    def write(self, data: bytes) -> None:
        if (
            data
            and not self.dataBuffer
            and self._tempDataLen + len(data) <= _CORK_LIMIT
            and self.connected
            and not self._writeDisconnected
            and not self.TLS
        ):
            self._tempDataBuffer.append(data)
            self._tempDataLen += len(data)
            if self._tempDataLen >= _SEND_AT_ONCE:
                # A large body's chunk: waking the peer is cheap next to
                # the copy, and holding a chunk per connection until the
                # iteration ends costs memory (and page faults) instead.
                self._send_corked()
                return
            if not self._corked:
                self._corked = True
                _Batch.corked.append(self)
                if not _Batch.flush_scheduled and not _Batch.polling:
                    _Batch.flush_scheduled = True
                    # Runs after the poll that is being handled: a call due
                    # now also makes the next poll return at once.
                    cast(IReactorTime, self.reactor).callLater(0, _send_all_corked)
            return
        super().write(data)

    def writeSequence(self, iovec: Iterable[bytes]) -> None:
        self.write(b"".join(iovec))

    def _send_corked(self) -> None:
        self._corked = False
        if not self.connected or self.dataBuffer or not self._tempDataBuffer:
            # Gone, or twisted's buffered path already owns the data.
            return
        data = b"".join(self._tempDataBuffer)
        self._tempDataBuffer = []
        self._tempDataLen = 0
        try:
            sent = self.socket.send(data)
        except OSError:
            sent = 0
        if sent < len(data):
            tcp.Connection.write(self, data[sent:])
        elif self.disconnecting or self._writeDisconnecting:
            # loseConnection waits for the buffer to drain via doWrite.
            self.startWriting()

    def pauseProducing(self) -> None:
        self._pause_pending = True

    def resumeProducing(self) -> None:
        if self._pause_pending:
            self._pause_pending = False
            return
        super().resumeProducing()

    def doRead(self):  # type: ignore[no-untyped-def]
        if self._pause_pending:
            # The pause stood: stop reading now, and leave the data in the
            # kernel's buffer, which is where backpressure wants it.
            self._pause_pending = False
            super().pauseProducing()
            return None
        return super().doRead()


class _FastServer(_FewerSyscalls, tcp.Server):
    pass


def _backend_read_size(implementation: str) -> int:
    """How much to read from a backend socket at once, by Python implementation."""
    if implementation == "PyPy":
        # PyPy allocates larger strings outside its nursery and frees them
        # only at a major collection, which holds the peak RSS up.
        return 16 * 1024
    # Twisted reads 64 KiB at a time, so a 1 MiB body costs some 18 trips
    # through Agent's parser, the relay and twisted.web.  Just under 128 KiB
    # halves that; at 128 KiB and above, glibc's malloc serves each read
    # with a fresh mmap, whose page faults cost more than the trips saved.
    return 127 * 1024


class _FastClient(_FewerSyscalls, tcp.Client):
    bufferSize = _backend_read_size(platform.python_implementation())


# Accepting more than this at close means the queue refills as fast as it
# empties; stop and close rather than spin.
_MOST_DRAINED = 10_000


def drain_accept_queue(port: object) -> int:
    """
    Accept every connection already waiting on a listening TCP port.

    Linux resets the connections still in a listening socket's accept queue
    when the socket closes; with SO_REUSEPORT, that queue holds clients the
    kernel handed to this process while a replacement was already listening.
    Accepting them first lets them be served instead.  Returns how many
    accept rounds found work.
    """
    fileno = getattr(port, "fileno", None)
    do_read = getattr(port, "doRead", None)
    if fileno is None or do_read is None or fileno() < 0:
        return 0
    poller = select.poll()
    poller.register(fileno(), select.POLLIN)
    rounds = 0
    while rounds < _MOST_DRAINED and poller.poll(0):
        do_read()
        rounds += 1
    return rounds


class _FastPort(tcp.Port):
    transport = _FastServer

    def connectionLost(self, reason):  # type: ignore[no-untyped-def]
        # The socket closes in here, a reactor turn after stopListening:
        # take what queued up meanwhile, so that none of it is reset.
        drain_accept_queue(self)
        super().connectionLost(reason)


class _FastConnector(tcp.Connector):
    def _makeTransport(self) -> tcp.Client:
        return _FastClient(self.host, self.port, self.bindAddress, self, self.reactor)


class FastTCPReactor:
    """
    A reactor stand-in for endpoints: C{listenTCP} and C{connectTCP} make
    the transports above; everything else is the real reactor's.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor

    def __getattr__(self, name: str) -> object:
        return getattr(self._reactor, name)

    def listenTCP(self, port, factory, backlog=50, interface=""):  # type: ignore[no-untyped-def]
        listening = _FastPort(port, factory, backlog, interface, self._reactor)
        listening.startListening()
        return listening

    def adoptStreamPort(self, fileDescriptor, addressFamily, factory):  # type: ignore[no-untyped-def]
        if addressFamily not in (socket.AF_INET, socket.AF_INET6):
            return self._reactor.adoptStreamPort(fileDescriptor, addressFamily, factory)
        listening = _FastPort._fromListeningDescriptor(
            self._reactor, fileDescriptor, addressFamily, factory
        )
        listening.startListening()
        return listening

    def connectTCP(self, host, port, factory, timeout=30.0, bindAddress=None):  # type: ignore[no-untyped-def]
        connector = _FastConnector(host, port, factory, timeout, bindAddress, self._reactor)
        connector.connect()
        return connector


def install_fast_poll(reactor: object) -> bool:
    """
    Have an epoll reactor hand plain read events straight to their
    selectables, and send what they wrote once the poll's events are done.

    Twisted runs every event through C{log.callWithLogger}, which builds a
    logging context (a dict and four calls) so that whatever the protocol
    logs is tagged with its log prefix; under load that is some 6 % of the
    proxy's CPU time.  Here a read event on a readable selectable calls its
    C{doRead} directly; an error it raises is still logged inside that
    context, and the selectable dropped, as Twisted does.  Any other event
    (writable, hung up, an error on the socket) goes Twisted's own way.

    Relies on the epoll reactor's C{_poller}, C{_selectables} (fd to
    selectable), C{_reads}, C{_POLL_IN}/C{_POLL_OUT}/C{_POLL_DISCONNECTED},
    C{_doReadOrWrite(selectable, fd, event)} and
    C{_disconnectSelectable(selectable, why, isRead)}, and on C{mainLoop}
    calling C{doIteration(timeout)} each round (checked against Twisted
    25.5.0 to 26.10.0, pinned by C{tests/test_compat.py}).  Returns whether
    it was installed: any other reactor is left alone.
    """
    from twisted.internet.epollreactor import EPollReactor

    if not isinstance(reactor, EPollReactor):
        return False
    reactor.doIteration = _FastPoll(reactor)  # type: ignore[method-assign]
    return True


class _FastPoll:
    """C{doIteration} for an epoll reactor; see L{install_fast_poll}."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._poller = reactor._poller
        self._selectables = reactor._selectables
        self._reads = reactor._reads
        self._read = reactor._POLL_IN
        self._not_plain_read = reactor._POLL_DISCONNECTED | reactor._POLL_OUT

    def __call__(self, timeout: float | None) -> None:
        selectables = self._selectables
        try:
            events = self._poller.poll(-1 if timeout is None else timeout, len(selectables))
        except InterruptedError:
            return
        reads = self._reads
        read = self._read
        not_plain_read = self._not_plain_read
        _Batch.polling = True
        try:
            for fd, event in events:
                selectable = selectables.get(fd)
                if selectable is None:
                    continue
                if event & not_plain_read or not event & read or fd not in reads:
                    log.callWithLogger(
                        selectable, self._reactor._doReadOrWrite, selectable, fd, event
                    )
                    continue
                try:
                    why = selectable.doRead()
                except BaseException:
                    failure = Failure()
                    why = failure.value
                    log.callWithLogger(selectable, log.err, failure)
                if why:
                    self._reactor._disconnectSelectable(selectable, why, True)
        finally:
            _Batch.polling = False
            if _Batch.corked and not _Batch.flush_scheduled:
                _send_all_corked()
