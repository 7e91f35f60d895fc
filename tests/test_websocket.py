"""
End-to-end: a real WebSocket client (the `websockets` package) through a
real proxy to myapp's /ws, as the demo runs it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from .processes import Twistd, start_twistd

MIB = 1024 * 1024


def _proxy(apps: tuple[int, int], tmp_path: Path, **environ: str) -> Twistd:
    blue, green = apps
    return start_twistd(
        "sillyproxy",
        [],
        {"BLUE": f"http://127.0.0.1:{blue}", "GREEN": f"http://127.0.0.1:{green}", **environ},
        tmp_path,
    )


def _url(proxy: Twistd, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{proxy.port}{path}"


def test_echo_through_the_proxy_with_large_messages(apps, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """If a WebSocket client connects through the proxy, then myapp echoes with its colour (so it saw Color), for 1 MiB messages both ways too, and the tunnel's end is logged as 101."""
    proxy = _proxy(apps, tmp_path, GREEN_WEIGHT="0")
    try:
        with connect(_url(proxy), open_timeout=10, close_timeout=5, max_size=4 * MIB, proxy=None) as socket:
            socket.send("hello")
            assert socket.recv(timeout=10) == "blue: hello"
            big = bytes(range(256)) * (MIB // 256)
            socket.send(big)
            assert socket.recv(timeout=30) == b"blue: " + big
            text = "x" * MIB
            socket.send(text)
            assert socket.recv(timeout=30) == "blue: " + text
        assert proxy.logged(" GET /ws blue 101 "), proxy.log()
        # The server closes the TCP connection first (RFC 6455 section 7.1.1).
        assert proxy.logged("(tunnel closed by backend, "), proxy.log()
    finally:
        proxy.stop()


def test_weights_route_upgrades(apps, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """If both colours have weight, then WebSockets land on both, each answered by the colour it landed on."""
    proxy = _proxy(apps, tmp_path)
    try:
        seen = set()
        for _ in range(30):
            with connect(_url(proxy), open_timeout=10, close_timeout=5, proxy=None) as socket:
                socket.send("which")
                seen.add(socket.recv(timeout=10))
        assert seen == {"blue: which", "green: which"}
    finally:
        proxy.stop()


def test_an_answer_other_than_101_is_relayed(apps, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """If the backend does not switch protocols (a path that is not a WebSocket), then the client gets its answer as a response."""
    proxy = _proxy(apps, tmp_path, GREEN_WEIGHT="0")
    try:
        with pytest.raises(InvalidStatus) as refused:
            with connect(_url(proxy, "/"), open_timeout=10, proxy=None):
                pass
        assert refused.value.response.status_code == 200
        assert b"blue" in refused.value.response.body
    finally:
        proxy.stop()


def test_sigterm_with_an_open_tunnel_exits_within_the_drain_timeout(apps, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """If SIGTERM arrives while a WebSocket is open, then the tunnel is closed at the drain deadline and the proxy exits 0."""
    proxy = _proxy(apps, tmp_path, GREEN_WEIGHT="0", SILLYPROXY_DRAIN_TIMEOUT="2")
    try:
        with connect(_url(proxy), open_timeout=10, close_timeout=5, proxy=None) as socket:
            socket.send("before")
            assert socket.recv(timeout=10) == "blue: before"
            started = time.monotonic()
            proxy.terminate()
            assert proxy.wait(20) == 0, proxy.log()
            took = time.monotonic() - started
            with pytest.raises(ConnectionClosed):
                socket.recv(timeout=10)
        assert 1.5 <= took < 15, took
    finally:
        proxy.stop()
