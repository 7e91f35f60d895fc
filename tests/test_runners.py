"""End-to-end: the proxy under both of Twisted's runners, and on both kinds of transport."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pytest

from .processes import Twistd, start_twistd


def fetch(port: int, path: str = "/") -> tuple[int, str, dict[str, str]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.status, response.read().decode(), dict(response.headers)


@pytest.fixture
def blue_backend(running: list[Twistd], tmp_path: Path) -> int:
    """A myapp on 127.0.0.1 that answers as the colour it is told."""
    app = start_twistd("myapp", [], {}, tmp_path)
    running.append(app)
    return app.port


@pytest.mark.parametrize("fast", ["1", "0"])
def test_forwards_on_either_transport(
    running: list[Twistd], tmp_path: Path, blue_backend: int, fast: str
) -> None:
    """If SILLYPROXY_FAST_TRANSPORT is 1 or 0, then the proxy forwards all the same, on its own or Twisted's transports."""
    proxy = start_twistd(
        "sillyproxy",
        [],
        {"BLUE": f"http://127.0.0.1:{blue_backend}", "SILLYPROXY_FAST_TRANSPORT": fast},
        tmp_path,
    )
    running.append(proxy)
    for _ in range(3):
        status, body, headers = fetch(proxy.port)
        assert (status, body.split()[0]) == (200, "blue")
        assert len(headers["X-Request-Id"]) == 32
    proxy.terminate()
    assert proxy.wait() == 0


def test_twist_runner_serves_and_drains(tmp_path: Path, blue_backend: int) -> None:
    """If the proxy runs under `twist` (which never calls privilegedStartService), then it listens, forwards, and exits 0 on SIGTERM."""
    twist = Path(sys.executable).with_name("twist")
    proxy = start_twistd(
        "sillyproxy",
        [],
        {"BLUE": f"http://127.0.0.1:{blue_backend}"},
        tmp_path,
        runner=[str(twist)] if twist.exists() else [sys.executable, "-m", "twisted"],
    )
    try:
        status, body, _ = fetch(proxy.port)
        assert (status, body.split()[0]) == (200, "blue")
        proxy.terminate()
        assert proxy.wait() == 0, proxy.log()
    finally:
        proxy.stop()
