"""Tests of the batched-send, lazy-pause TCP transports over real sockets on 127.0.0.1."""

from __future__ import annotations

import socket

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.task import deferLater

from twisted.internet.abstract import FileDescriptor
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.main import CONNECTION_DONE
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._transport import _CORK_LIMIT, FastTCPReactor, _backend_read_size, install_fast_poll

from .support import TableTests, rows

fast = FastTCPReactor(reactor)


@pytest.fixture(params=["twisted poll", "fast poll"])
def poll(request):  # type: ignore[no-untyped-def]
    """Each socket test runs under Twisted's own poll and under install_fast_poll's."""
    if request.param == "fast poll":
        assert install_fast_poll(reactor)
    yield request.param
    vars(reactor).pop("doIteration", None)


class Echo(Protocol):
    """Echoes each read back as many small writes, to be batched into one send."""

    def dataReceived(self, data: bytes) -> None:
        for i in range(0, len(data), 7):
            self.transport.write(data[i : i + 7])


class Collect(Protocol):
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received = b""
        self.done: Deferred[bytes] = Deferred()
        self.made: Deferred[Protocol] = Deferred()

    def connectionMade(self) -> None:
        self.made.callback(self)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= self.expected and not self.done.called:
            self.done.callback(self.received)


@pytest_twisted.inlineCallbacks
def eventually(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    """Wait until check() is true; generous, so a slow machine does not fail the test."""
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        yield deferLater(reactor, 0.02, lambda: None)
    assert check()


def listen(protocol: type[Protocol]):  # type: ignore[no-untyped-def]
    return fast.listenTCP(0, Factory.forProtocol(protocol), interface="127.0.0.1")


def connect(port, collector: Collect) -> None:  # type: ignore[no-untyped-def]
    factory = ClientFactory()
    factory.protocol = lambda: collector
    fast.connectTCP("127.0.0.1", port.getHost().port, factory)


@pytest_twisted.inlineCallbacks
def test_batched_writes_arrive_in_order(poll):  # type: ignore[no-untyped-def]
    """If a protocol writes many pieces while handling a read, then they all arrive, in order."""
    port = listen(Echo)
    message = bytes(range(256)) * 200
    collector = Collect(len(message))
    connect(port, collector)
    client = yield collector.made
    client.transport.write(message)
    received = yield collector.done
    assert received == message
    client.transport.loseConnection()
    yield port.stopListening()


class Ticker(Protocol):
    """Writes from a timer, not while handling a read: small, large, then small again."""

    PIECES = [b"tick", bytes(range(256)) * 160, b"tock"]

    def connectionMade(self) -> None:
        reactor.callLater(0.05, self.write_pieces)

    def write_pieces(self) -> None:
        for piece in self.PIECES:
            self.transport.write(piece)


@pytest_twisted.inlineCallbacks
def test_writes_outside_a_read_are_sent_in_order(poll):  # type: ignore[no-untyped-def]
    """If a protocol writes from a timer, mixing pieces held for the end of the turn with one sent at once, then all arrive, in order."""
    port = listen(Ticker)
    expected = b"".join(Ticker.PIECES)
    collector = Collect(len(expected))
    connect(port, collector)
    client = yield collector.made
    received = yield collector.done
    assert received == expected
    client.transport.loseConnection()
    yield port.stopListening()


class Pausing(Protocol):
    """Pauses its own transport on connection; the test decides when to resume."""

    def __init__(self) -> None:
        self.received = b""

    def connectionMade(self) -> None:
        servers.append(self)
        self.transport.pauseProducing()

    def dataReceived(self, data: bytes) -> None:
        self.received += data


servers: list[Pausing] = []


@pytest_twisted.inlineCallbacks
def test_pause_that_stands_stops_reading(poll):  # type: ignore[no-untyped-def]
    """If a pause is not undone, then no data is delivered until resumeProducing."""
    port = listen(Pausing)
    before = len(servers)
    collector = Collect(0)
    connect(port, collector)
    client = yield collector.made
    client.transport.write(b"hello")
    yield eventually(lambda: len(servers) > before)
    yield deferLater(reactor, 0.2, lambda: None)
    server = servers[-1]
    assert server.received == b""
    server.transport.resumeProducing()
    yield eventually(lambda: server.received == b"hello")
    client.transport.loseConnection()
    yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_pause_undone_at_once_keeps_reading(poll):  # type: ignore[no-untyped-def]
    """If a pause is undone before the socket is read, then reading simply goes on."""
    port = listen(Pausing)
    before = len(servers)
    collector = Collect(0)
    connect(port, collector)
    client = yield collector.made
    yield eventually(lambda: len(servers) > before)
    server = servers[-1]
    server.transport.resumeProducing()
    client.transport.write(b"more")
    yield eventually(lambda: server.received == b"more")
    client.transport.loseConnection()
    yield port.stopListening()


class WriteThenClose(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data * 3)
        self.transport.loseConnection()


@pytest_twisted.inlineCallbacks
def test_close_after_batched_write_sends_everything(poll):  # type: ignore[no-untyped-def]
    """If a protocol writes then closes while handling a read, then the data is sent before the close."""
    port = listen(WriteThenClose)
    collector = Collect(12)
    connect(port, collector)
    client = yield collector.made
    client.transport.write(b"abcd")
    received = yield collector.done
    assert received == b"abcdabcdabcd"
    yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_connections_queued_at_close_are_served_not_reset(poll):  # type: ignore[no-untyped-def]
    """
    If connections are waiting in the accept queue when the listener
    closes, then they are accepted and served rather than reset by the kernel.
    """
    from sillyproxy._reuseport import ReusePortEndpoint

    port = yield ReusePortEndpoint(fast, 0, "127.0.0.1").listen(Factory.forProtocol(Echo))
    number = port.getHost().port
    # Stop accepting, as if the reactor were busy: clients complete their
    # handshakes into the kernel's queue and wait there.
    port.stopReading()
    clients = []
    for i in range(5):
        s = socket.create_connection(("127.0.0.1", number), timeout=5)
        s.sendall(b"ping %d" % i)
        clients.append(s)
    yield port.stopListening()
    answers = []
    for i, s in enumerate(clients):
        s.setblocking(False)
        data = b""
        for _ in range(500):
            try:
                data += s.recv(100)
            except BlockingIOError:
                yield deferLater(reactor, 0.01, lambda: None)
                continue
            if len(data) >= len(b"ping %d" % i):
                break
        answers.append(data)
        s.close()
    assert answers == [b"ping %d" % i for i in range(5)]


class ReadSizeTests(TableTests):
    @rows(("CPython",), ("PyPy",))
    def test_backend_read_size_fits_the_cork_and_avoids_mmap(self, implementation: str) -> None:
        """
        If either Python reads a backend, then a whole read fits the cork (so a
        relayed read is never split onto twisted's buffered path), and it stays
        under glibc's 128 KiB mmap threshold, so no read costs a fresh mapping.
        """
        size = _backend_read_size(implementation)
        self.assertTrue(16 * 1024 <= size <= _CORK_LIMIT, size)
        self.assertLess(size, 128 * 1024)


class _Reader(FileDescriptor):
    """Reads one end of a socket pair; C{read} decides what each read does."""

    def __init__(self, sock: socket.socket, reactor: EPollReactor, read) -> None:  # type: ignore[no-untyped-def]
        super().__init__(reactor)
        self.socket = sock
        self.read = read
        self.lost: list[type[BaseException]] = []
        self.connected = True

    def fileno(self) -> int:
        return self.socket.fileno()

    def doRead(self):  # type: ignore[no-untyped-def]
        return self.read(self.socket.recv(100))

    def connectionLost(self, reason: Failure) -> None:
        self.lost.append(type(reason.value))
        super().connectionLost(reason)


class FastPollTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = EPollReactor()
        self.ours, self.theirs = socket.socketpair()
        self.addCleanup(self.ours.close)
        self.addCleanup(self.theirs.close)
        self.addCleanup(self.reactor._poller.close)
        self.assertTrue(install_fast_poll(self.reactor))

    def test_other_reactors_left_alone(self) -> None:
        """If the reactor is not an epoll reactor, then nothing is installed."""
        memory = MemoryReactorClock()
        self.assertFalse(install_fast_poll(memory))
        self.assertNotIn("doIteration", vars(memory))

    def test_read_event_reaches_do_read(self) -> None:
        """If a reading selectable's socket is readable, then one poll hands the data to its doRead."""
        seen: list[bytes] = []
        reader = _Reader(self.ours, self.reactor, seen.append)
        reader.startReading()
        self.theirs.send(b"ping")
        self.reactor.doIteration(1.0)
        self.assertEqual(seen, [b"ping"])
        self.assertEqual(reader.lost, [])

    def test_error_in_do_read_is_logged_and_drops_the_selectable(self) -> None:
        """If doRead raises, then the error is logged, the selectable is disconnected and the reactor goes on."""
        def explode(data: bytes) -> None:
            raise ZeroDivisionError(data)

        reader = _Reader(self.ours, self.reactor, explode)
        reader.startReading()
        self.theirs.send(b"boom")
        self.reactor.doIteration(1.0)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(reader.lost, [ZeroDivisionError])
        self.assertNotIn(reader, self.reactor.getReaders())

    def test_hang_up_goes_twisted_way(self) -> None:
        """If the peer closes, then the selectable is told the connection is done, as Twisted tells it."""
        reader = _Reader(self.ours, self.reactor, lambda data: None if data else CONNECTION_DONE)
        reader.startReading()
        self.theirs.close()
        for _ in range(3):
            self.reactor.doIteration(0.5)
            if reader.lost:
                break
        self.assertEqual(reader.lost, [type(CONNECTION_DONE)])
        self.assertNotIn(reader, self.reactor.getReaders())
