"""
Which forwarding headers a backend can trust: the proxy's own by default,
a trusted proxy's when it sits behind one (SILLYPROXY_TRUSTED_PROXIES), and
the PROXY protocol's client address with the haproxy: endpoint.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site

from .processes import Twistd, free_port, start_twistd
from .support import CaptureResource, InMemoryProxy, backend

BLUE = backend("blue", "http://blue.internal:8080")
# The in-memory client connects from 127.0.0.9.
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)

CLAIMS = (
    b"GET / HTTP/1.1\r\nHost: shop.example\r\n"
    b"X-Forwarded-For: 198.51.100.1, 203.0.113.5\r\n"
    b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: claimed.example\r\n"
    b"Forwarded: for=203.0.113.5;proto=https;host=claimed.example\r\n"
    b"X-Real-IP: 203.0.113.5\r\n\r\n"
)


class TrustTests(SynchronousTestCase):
    def forward(self, trusted: bool):  # type: ignore[no-untyped-def]
        capture = CaptureResource()
        proxy = InMemoryProxy([(BLUE, capture)], trusted_proxies=LOOPBACK if trusted else ())
        written, _ = proxy.raw(CLAIMS)
        self.assertTrue(written.startswith(b"HTTP/1.1 200 "), written)
        return capture.seen[0].headers, proxy.access[0]

    def test_claims_from_an_untrusted_peer_are_replaced(self) -> None:
        """If the peer is not a trusted proxy, then its X-Forwarded-Proto/Host are replaced, its Forwarded and X-Real-IP removed, and a Forwarded of this hop alone is sent."""
        headers, record = self.forward(trusted=False)
        self.assertEqual(headers.getRawHeaders(b"x-forwarded-proto"), [b"http"])
        self.assertEqual(headers.getRawHeaders(b"x-forwarded-host"), [b"shop.example"])
        self.assertEqual(headers.getRawHeaders(b"forwarded"), [b"for=127.0.0.9;proto=http;host=shop.example"])
        self.assertIsNone(headers.getRawHeaders(b"x-real-ip"))
        self.assertEqual(
            headers.getRawHeaders(b"x-forwarded-for"), [b"198.51.100.1, 203.0.113.5, 127.0.0.9"]
        )
        self.assertEqual(record.client, "127.0.0.9")

    def test_claims_from_a_trusted_peer_are_kept_and_extended(self) -> None:
        """If the peer is a trusted proxy, then its claims are kept, Forwarded gains this hop's element, and the access log names the real client."""
        headers, record = self.forward(trusted=True)
        self.assertEqual(headers.getRawHeaders(b"x-forwarded-proto"), [b"https"])
        self.assertEqual(headers.getRawHeaders(b"x-forwarded-host"), [b"claimed.example"])
        self.assertEqual(
            headers.getRawHeaders(b"forwarded"),
            [b"for=203.0.113.5;proto=https;host=claimed.example, for=127.0.0.9;proto=http;host=shop.example"],
        )
        self.assertEqual(headers.getRawHeaders(b"x-real-ip"), [b"203.0.113.5"])
        self.assertEqual(record.client, "203.0.113.5")


@pytest.fixture
def recorded() -> Iterator[tuple[CaptureResource, int]]:
    capture = CaptureResource()
    port = reactor.listenTCP(0, Site(capture), interface="127.0.0.1")
    yield capture, port.getHost().port
    port.stopListening()


@pytest_twisted.inlineCallbacks
def test_proxy_protocol_v1_gives_the_real_client(recorded, tmp_path: Path):  # type: ignore[no-untyped-def]
    """
    If the proxy listens with haproxy: and a load balancer sends a PROXY v1
    header, then the backend sees the client it names in X-Forwarded-For and
    Forwarded, and the access log names it too; a connection without the
    header is closed unanswered.
    """
    capture, backend_port = recorded
    port = free_port()
    proxy: Twistd = start_twistd(
        "sillyproxy",
        [],
        {"BLUE": f"http://127.0.0.1:{backend_port}"},
        tmp_path,
        port=port,
        listen=f"haproxy:tcp:{port}:interface=127.0.0.1",
    )
    try:
        raw = (
            b"PROXY TCP4 203.0.113.9 127.0.0.1 55555 8080\r\n"
            b"GET /lb HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n"
        )
        answer = yield deferToThread(_exchange, port, raw)
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        headers = capture.seen[-1].headers
        assert headers.getRawHeaders(b"x-forwarded-for") == [b"203.0.113.9"]
        assert headers.getRawHeaders(b"forwarded") == [b"for=203.0.113.9;proto=http;host=shop.example"]
        assert proxy.logged(" 203.0.113.9 GET /lb blue 200 "), proxy.log()
        # Without the PROXY header, a connection is closed unanswered.
        bare = yield deferToThread(_exchange, port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert bare == b""
    finally:
        proxy.stop()


def _exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
