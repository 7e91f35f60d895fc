"""Tests of bytes_acked over real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator

import pytest

from sillyproxy._sendprogress import bytes_acked

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="TCP_INFO layout is Linux's")

CHUNK = b"x" * 65536


class Handle:
    """A transport as far as bytes_acked is concerned: C{getHandle()} is its socket."""

    def __init__(self, handle: object) -> None:
        self.handle = handle

    def getHandle(self) -> object:
        return self.handle


class Wrapper:
    """Like TLSMemoryBIOProtocol: C{getHandle()} is no socket; C{transport} is the TCP transport."""

    def __init__(self, transport: object) -> None:
        self.transport = transport

    def getHandle(self) -> object:
        return object()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(proxy, client): the accepted side writes, non-blocking; the client side reads."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname(), timeout=5)
        proxy, _ = server.accept()
    proxy.setblocking(False)
    client.setblocking(False)
    with proxy, client:
        yield proxy, client


def fill(proxy: socket.socket, seconds: float = 3.0) -> int:
    """
    Write until neither the kernel takes more nor the count moves for 0.5 s
    (or C{seconds} pass); return the bytes taken.  After the send buffer
    fills, the last of the client's receive buffer is acknowledged some
    200 ms later (measured: 113152 then 128512 bytes at 0.26 s).
    """
    sent = 0
    deadline = time.monotonic() + seconds
    quiet_since = time.monotonic()
    acked = bytes_acked(Handle(proxy))
    while time.monotonic() < deadline:
        try:
            sent += proxy.send(CHUNK)
            quiet_since = time.monotonic()
            continue
        except BlockingIOError:
            pass
        now_acked = bytes_acked(Handle(proxy))
        if now_acked != acked:
            acked = now_acked
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 0.5:
            break
        time.sleep(0.01)
    return sent


def drain(client: socket.socket, seconds: float = 2.0) -> int:
    """Read whatever arrives until 0.2 s pass without any (or C{seconds} pass)."""
    read = 0
    deadline = time.monotonic() + seconds
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        try:
            data = client.recv(1 << 20)
        except BlockingIOError:
            if time.monotonic() - quiet_since > 0.2:
                break
            time.sleep(0.01)
            continue
        read += len(data)
        quiet_since = time.monotonic()
    return read


def acked_soon(transport: object, expected: int, timeout: float = 5.0) -> bool:
    """Whether the count reaches C{expected} within C{timeout} (a delayed ACK can take 200 ms)."""
    deadline = time.monotonic() + timeout
    while bytes_acked(transport) != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return bytes_acked(transport) == expected


@linux
def test_counts_what_the_reader_took(pair: tuple[socket.socket, socket.socket]) -> None:
    """All of a small write that the client read is acknowledged, byte for byte."""
    proxy, client = pair
    assert bytes_acked(Handle(proxy)) == 0
    proxy.sendall(b"y" * 10000)
    assert drain(client) == 10000
    assert acked_soon(Handle(proxy), 10000)


@linux
def test_flat_for_a_never_reader(pair: tuple[socket.socket, socket.socket]) -> None:
    """Once the buffers are full, nothing moves while the client does not read."""
    proxy, _ = pair
    sent = fill(proxy)
    stalled = bytes_acked(Handle(proxy))
    assert stalled is not None
    # The client's receive buffer took some; the proxy's send queue holds the rest.
    assert 0 < stalled < sent
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        assert fill(proxy, 0.1) == 0
        assert bytes_acked(Handle(proxy)) == stalled
        time.sleep(0.05)


@linux
def test_grows_when_the_reader_reads(pair: tuple[socket.socket, socket.socket]) -> None:
    """Reading a stalled connection's data moves the count (the window reopens)."""
    proxy, client = pair
    fill(proxy)
    stalled = bytes_acked(Handle(proxy))
    assert stalled is not None
    # Reading the whole receive buffer certainly reopens the window.
    assert drain(client, 1.0) > 0
    deadline = time.monotonic() + 2
    value = bytes_acked(Handle(proxy))
    while value == stalled and time.monotonic() < deadline:
        time.sleep(0.01)
        value = bytes_acked(Handle(proxy))
    assert value is not None and value > stalled


@linux
def test_ipv6(pair: tuple[socket.socket, socket.socket]) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no ::1")
    with server:
        client = socket.create_connection(server.getsockname()[:2], timeout=5)
        proxy, _ = server.accept()
    with proxy, client:
        proxy.sendall(b"z" * 100)
        assert client.recv(100)
        deadline = time.monotonic() + 2
        while bytes_acked(Handle(proxy)) != 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert bytes_acked(Handle(proxy)) == 100


@linux
def test_through_a_wrapper(pair: tuple[socket.socket, socket.socket]) -> None:
    """A TLS-like wrapper is looked through to its TCP transport."""
    proxy, client = pair
    proxy.sendall(b"y" * 10)
    assert drain(client) == 10
    assert acked_soon(Handle(proxy), 10)
    assert bytes_acked(Wrapper(Handle(proxy))) == 10


@linux
def test_through_twisted_tls(pair: tuple[socket.socket, socket.socket]) -> None:
    """Twisted's TLS transport: getHandle() is the OpenSSL connection, .transport the TCP one."""
    pytest.importorskip("OpenSSL")
    from twisted.internet.protocol import Factory, Protocol
    from twisted.internet.ssl import optionsForClientTLS
    from twisted.internet.testing import StringTransport
    from twisted.protocols.tls import TLSMemoryBIOFactory

    proxy, client = pair
    proxy.sendall(b"y" * 10)
    assert drain(client) == 10

    class TCP(StringTransport):
        def getHandle(self) -> socket.socket:
            return proxy

    factory = TLSMemoryBIOFactory(optionsForClientTLS("localhost"), True, Factory.forProtocol(Protocol))
    tls = factory.buildProtocol(None)
    tls.makeConnection(TCP())
    assert not isinstance(tls.getHandle(), socket.socket)
    assert acked_soon(tls, 10)
    # The wrapped protocol sees the TLS transport.
    assert bytes_acked(tls.wrappedProtocol.transport) == 10  # type: ignore[attr-defined]


@linux
def test_twisted_tcp_transport() -> None:
    """A real twisted.internet.tcp transport (on a memory reactor): getHandle() is its socket."""
    from twisted.internet.protocol import Protocol
    from twisted.internet.tcp import Server
    from twisted.internet.testing import MemoryReactor

    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        accepted, address = listener.accept()
    with client:
        accepted.setblocking(False)
        transport = Server(accepted, Protocol(), address, None, 1, MemoryReactor())  # type: ignore[arg-type]
        try:
            accepted.sendall(b"y" * 10)
            assert client.recv(10)
            assert acked_soon(transport, 10)
        finally:
            accepted.close()
        # A closed socket (fileno -1).
        assert bytes_acked(transport) is None
        # After connectionLost Twisted deletes the transport's socket.
        del transport.socket
        assert bytes_acked(transport) is None


def test_none_for_a_unix_socket() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        assert bytes_acked(Handle(left)) is None


def test_none_for_udp() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        assert bytes_acked(Handle(udp)) is None


def test_none_without_a_socket() -> None:
    assert bytes_acked(object()) is None
    assert bytes_acked(None) is None
    assert bytes_acked(Handle(None)) is None
    assert bytes_acked(Wrapper(None)) is None
    assert bytes_acked(Wrapper(object())) is None


def test_none_when_getHandle_raises() -> None:
    class Broken:
        def getHandle(self) -> object:
            raise RuntimeError("gone")

    assert bytes_acked(Broken()) is None


def test_none_for_an_in_memory_transport() -> None:
    from twisted.internet.testing import StringTransport

    assert bytes_acked(StringTransport()) is None


def test_none_for_a_closed_socket() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname(), timeout=5)
        accepted, _ = server.accept()
    client.close()
    accepted.close()
    assert accepted.fileno() == -1
    assert bytes_acked(Handle(accepted)) is None


def test_wrapping_is_bounded() -> None:
    """A transport that wraps itself is not followed forever."""

    class Loop:
        def getHandle(self) -> object:
            return object()

    loop = Loop()
    loop.transport = loop  # type: ignore[attr-defined]
    assert bytes_acked(loop) is None
