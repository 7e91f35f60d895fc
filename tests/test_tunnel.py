"""
Upgrade tunnels in memory, through the real forwarding hop: the request
sent, the 101 relayed, bytes both ways, backpressure, half-close, the idle
timeout, and what is logged and counted (trial can run these too).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from sillyproxy._metrics import ProxyMetrics
from sillyproxy._routing import Router
from sillyproxy._tunnel import Tunnel, wants_upgrade

from .support import InMemoryProxy, TableTests, TCPStringTransport, backend, rows

BLUE = backend("blue", "http://blue.internal:8080")

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: shop.example\r\nConnection: keep-alive, Upgrade\r\n"
    b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)

SWITCHED = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
)


@implementer(IHalfCloseableProtocol)
class EchoAfterSwitch(Protocol):
    """A backend that answers the first request head with C{answer}, then (after a 101) echoes every byte, upper-cased."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.head = b""
        self.switched = False
        self.received = b""
        self.half_closed = False
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        if self.switched:
            self.received += data
            self.transport.write(data.upper())
            return
        self.head += data
        if b"\r\n\r\n" in self.head:
            self.transport.write(self.answer)
            self.switched = self.answer.startswith(b"HTTP/1.1 101")

    def readConnectionLost(self) -> None:
        self.half_closed = True
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: object = None) -> None:
        self.lost = True


class EchoFactory(Factory):
    def __init__(self, answer: bytes = SWITCHED) -> None:
        self.answer = answer
        self.built: list[EchoAfterSwitch] = []

    def buildProtocol(self, addr: object) -> EchoAfterSwitch:
        protocol = EchoAfterSwitch(self.answer)
        protocol.factory = self
        self.built.append(protocol)
        return protocol


def _metrics(router: Router) -> ProxyMetrics:
    return ProxyMetrics(CollectorRegistry(), router, "test", lambda: {}, lambda: 0.0)


def open_tunnel(answer: bytes = SWITCHED):  # type: ignore[no-untyped-def]
    """A proxy whose one colour answers an upgrade request with C{answer}, after the client sent one."""
    factory = EchoFactory(answer)
    proxy = InMemoryProxy([(BLUE, factory)], metrics_for=_metrics)
    written, transport = proxy.raw(UPGRADE)
    return proxy, factory, written, transport


class TunnelThroughTheProxyTests(SynchronousTestCase):
    def open(self, answer: bytes = SWITCHED):  # type: ignore[no-untyped-def]
        return open_tunnel(answer)

    def test_upgrade_request_keeps_upgrade_and_gets_color(self) -> None:
        """If a client asks to upgrade, then the backend gets Upgrade, Connection: Upgrade and Color, on a connection of its own."""
        proxy, factory, _, _ = self.open()
        [backend_side] = factory.built
        head = backend_side.head.lower()
        self.assertIn(b"\r\nupgrade: websocket\r\n", head)
        self.assertIn(b"\r\nconnection: upgrade\r\n", head)
        self.assertIn(b"\r\ncolor: blue\r\n", head)
        self.assertIn(b"\r\nsec-websocket-key: dghlihnhbxbszsbub25jzq==\r\n", head)
        self.assertNotIn(b"keep-alive", head)

    def test_101_is_relayed_then_bytes_flow_both_ways(self) -> None:
        """If the backend answers 101, then the client gets it with Upgrade/Connection/Sec-WebSocket-Accept, and bytes are copied both ways."""
        proxy, factory, written, transport = self.open()
        self.assertTrue(written.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), written)
        self.assertIn(b"\r\nUpgrade: websocket\r\n", written)
        self.assertIn(b"\r\nConnection: Upgrade\r\n", written)
        self.assertIn(b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", written)
        transport.clear()
        transport.protocol.dataReceived(b"hello, tunnel")
        proxy.flush()
        self.assertEqual(factory.built[0].received, b"hello, tunnel")
        self.assertEqual(transport.value(), b"HELLO, TUNNEL")
        self.assertIn('sillyproxy_open_tunnels{color="blue"} 1.0', generate_latest(proxy.metrics.registry).decode())

    def test_tunnel_end_is_logged_as_101_with_both_byte_counts(self) -> None:
        """If the client closes the tunnel, then the backend connection closes, and one access record says 101, the bytes each way and who closed."""
        proxy, factory, _, transport = self.open()
        transport.clear()
        transport.protocol.dataReceived(b"12345")
        proxy.flush()
        proxy.clock.advance(3)
        from twisted.internet import error
        from twisted.python.failure import Failure

        transport.protocol.connectionLost(Failure(error.ConnectionDone()))
        proxy.flush()
        self.assertTrue(factory.built[0].lost)
        [record] = proxy.access
        self.assertEqual((record.status, record.color, record.body_bytes), (101, "blue", 5))
        self.assertEqual(record.outcome, "tunnel closed by client, 5 bytes from the client")
        self.assertEqual(record.duration, 3)
        self.assertIn('sillyproxy_open_tunnels{color="blue"} 0.0', generate_latest(proxy.metrics.registry).decode())

    def test_backend_closing_closes_the_client(self) -> None:
        """If the backend closes the tunnel, then the client connection is closed."""
        proxy, factory, _, transport = self.open()
        factory.built[0].transport.loseConnection()
        proxy.flush()
        self.assertTrue(transport.disconnecting)

    def test_other_answers_are_relayed_as_responses(self) -> None:
        """If the backend answers anything but 101, then it is relayed as a normal response and no tunnel opens."""
        answer = b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 5\r\nX-Why: nope\r\n\r\nnope!"
        proxy, factory, written, transport = self.open(answer)
        self.assertTrue(written.startswith(b"HTTP/1.1 426 Upgrade Required\r\n"), written)
        self.assertIn(b"X-Why: nope\r\n", written)
        self.assertTrue(written.endswith(b"nope!"), written)
        self.assertEqual([r.status for r in proxy.access], [426])
        self.assertIn('sillyproxy_open_tunnels{color="blue"} 0.0', generate_latest(proxy.metrics.registry).decode())

    def test_idle_tunnel_is_closed(self) -> None:
        """If no byte goes either way for the tunnel idle timeout, then both connections close."""
        factory = EchoFactory()
        proxy = InMemoryProxy([(BLUE, factory)], tunnel_idle_timeout=10)
        _, transport = proxy.raw(UPGRADE)
        for _ in range(8):
            proxy.clock.advance(1)
        transport.protocol.dataReceived(b"ping")
        proxy.flush()
        for _ in range(9):
            proxy.clock.advance(1)
        self.assertFalse(transport.disconnecting)
        for _ in range(4):
            proxy.clock.advance(1)
        proxy.flush()
        self.assertTrue(transport.disconnecting)
        self.assertTrue(factory.built[0].lost)

    def test_h2c_is_not_tunnelled(self) -> None:
        """If a client asks for h2c, then Upgrade is stripped and the request goes through the pool as any other."""
        factory = EchoFactory(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        proxy = InMemoryProxy([(BLUE, factory)])
        written, _ = proxy.raw(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"
        )
        self.assertTrue(written.startswith(b"HTTP/1.1 200 "), written)
        head = factory.built[0].head.lower()
        self.assertNotIn(b"upgrade", head)
        self.assertNotIn(b"http2-settings", head)


class BackpressureTests(SynchronousTestCase):
    def test_each_side_pauses_the_other(self) -> None:
        """If one side's transport is paused (its buffer is full), then the tunnel stops reading the other side, and resumes it after."""
        client = StringTransport()
        backend_side = StringTransport()
        tunnel = Tunnel(client, backend_side)
        tunnel.start()
        # The client transport is the producer for the backend's buffer.
        self.assertIs(backend_side.producer, client)
        backend_side.producer.pauseProducing()
        self.assertEqual(client.producerState, "paused")
        backend_side.producer.resumeProducing()
        self.assertEqual(client.producerState, "producing")


class HalfCloseTests(SynchronousTestCase):
    def test_half_close_is_passed_on_each_way(self) -> None:
        """If one side half-closes (it will send no more), then only the other side's writing half is closed, so answers can still come back; once both have, both connections close."""
        client = TCPStringTransport()
        backend_side = TCPStringTransport()
        tunnel = Tunnel(client, backend_side)
        tunnel.client_half_closed()
        self.assertEqual((backend_side.write_closed, client.write_closed), (True, False))
        tunnel.from_backend(b"still answering")
        self.assertEqual(client.value(), b"still answering")
        self.assertFalse(client.disconnecting or backend_side.disconnecting)
        tunnel.backend_half_closed()
        self.assertTrue(client.write_closed)
        # Neither will send again: both connections are closed for good.
        self.assertTrue(client.disconnecting and backend_side.disconnecting)
        self.assertEqual(tunnel.ended_by, "client")

    def test_proxy_channel_passes_a_client_half_close(self) -> None:
        """If a tunnelled client half-closes, then the channel tells the tunnel; without a tunnel it closes as before."""
        proxy, factory, _, transport = open_tunnel()
        channel = transport.protocol
        seen: list[str] = []
        channel.tunnel.client_half_closed = lambda: seen.append("half")
        channel.readConnectionLost()
        self.assertEqual(seen, ["half"])
        plain = InMemoryProxy([(BLUE, EchoFactory())])
        _, idle = plain.raw(b"")
        idle.protocol.readConnectionLost()
        self.assertTrue(idle.disconnecting)


class ReviewedEdgeTests(SynchronousTestCase):
    def test_half_closed_tunnel_still_times_out(self) -> None:
        """If the backend half-closed and the client then vanished without a FIN, then the idle timeout still closes both connections."""
        client = TCPStringTransport()
        backend_side = TCPStringTransport()
        tunnel = Tunnel(client, backend_side)
        tunnel.backend_half_closed()
        tunnel.check_idle(0.0, 10)
        tunnel.check_idle(11.0, 10)
        self.assertTrue(client.disconnecting and backend_side.disconnecting)
        self.assertEqual(tunnel.ended_by, "backend")

    def test_101_drops_what_its_connection_header_names_and_their_request_id(self) -> None:
        """If the backend's 101 names headers in Connection or sends its own X-Request-Id, then the client gets neither, and one X-Request-Id, the proxy's."""
        answer = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade, X-Secret\r\n"
            b"X-Secret: s3\r\nX-Request-Id: theirs\r\nX-Kept: yes\r\n\r\n"
        )
        _, _, written, _ = open_tunnel(answer)
        head = written.split(b"\r\n\r\n")[0]
        self.assertNotIn(b"X-Secret: ", head)
        self.assertNotIn(b"theirs", head)
        self.assertEqual(head.count(b"X-Request-Id: "), 1)
        self.assertIn(b"\r\nX-Kept: yes", head)
        self.assertIn(b"\r\nConnection: Upgrade, X-Secret", head)

    def test_open_tunnel_is_not_an_inflight_request_nor_a_duration(self) -> None:
        """If a tunnel is open, then it is not counted as a request in flight; when it ends, it counts as a 101 but stays out of the duration histogram."""
        proxy, _, _, transport = open_tunnel()
        scraped = generate_latest(proxy.metrics.registry).decode()
        self.assertIn('sillyproxy_inflight_requests{color="blue"} 0.0', scraped)
        from twisted.internet import error
        from twisted.python.failure import Failure

        proxy.clock.advance(3600)
        transport.protocol.connectionLost(Failure(error.ConnectionDone()))
        scraped = generate_latest(proxy.metrics.registry).decode()
        self.assertIn('sillyproxy_requests_total{code="101",color="blue",method="GET"} 1.0', scraped)
        self.assertIn('sillyproxy_request_duration_seconds_count{color="blue"} 0.0', scraped)
        self.assertIn('sillyproxy_inflight_requests{color="blue"} 0.0', scraped)


class WantsUpgradeTests(TableTests):
    @rows(
        (frozenset({b"upgrade"}), [b"websocket"], True),
        (frozenset({b"keep-alive", b"upgrade"}), [b"WebSocket"], True),
        (frozenset({b"upgrade"}), [b"foo/1, websocket"], True),
        (frozenset(), [b"websocket"], False),
        (frozenset({b"upgrade"}), None, False),
        (frozenset({b"upgrade"}), [b""], False),
        (frozenset({b"upgrade"}), [b"h2c"], False),
        (frozenset({b"upgrade"}), [b"websocket, H2C"], False),
        (frozenset({b"upgrade"}), [b"h2c/1"], False),
    )
    def test_wants_upgrade(self, tokens: frozenset[bytes], upgrade: list[bytes] | None, expected: bool) -> None:
        """A tunnel only for Connection: upgrade with an Upgrade that names no h2c."""
        self.assertEqual(wants_upgrade(tokens, upgrade), expected)
