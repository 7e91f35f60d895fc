"""End-to-end: the proxy under both of Twisted's runners, and on both kinds of transport."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .processes import START_TIMEOUT, Twistd, free_port, start_twistd


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
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLUE", "GREEN", "SILLYPROXY"))}
    env.update(
        BLUE=f"http://127.0.0.1:{blue_backend}",
        SILLYPROXY_ADMIN_LISTEN=f"tcp:{free_port()}:interface=127.0.0.1",
    )
    twist = Path(sys.executable).with_name("twist")
    command = [str(twist)] if twist.exists() else [sys.executable, "-m", "twisted"]
    log_path = tmp_path / "twist.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command + ["sillyproxy", "--listen", f"tcp:{port}:interface=127.0.0.1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                status, body, _ = fetch(port)
                break
            except OSError:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
        assert (status, body.split()[0]) == (200, "blue")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
