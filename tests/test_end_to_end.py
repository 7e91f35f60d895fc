"""End-to-end tests: real twistd processes on 127.0.0.1, talked to over sockets."""

from __future__ import annotations

import hashlib
import socket
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
import treq
from twisted.internet.threads import deferToThread

from .backends import BIG_RESPONSE, MIB, pattern, serve
from .processes import START_TIMEOUT, Twistd, free_port, start_twistd, twistd_command

BIG_UPLOAD = 20 * MIB


@pytest.fixture
def local_backend() -> Iterator[int]:
    """A backend in the test process's reactor: /big streams 50 MiB, /slow waits, anything else digests the body."""
    port = serve()
    yield port.getHost().port
    port.stopListening()


def proxy_url(proxy: Twistd, path: str = "/") -> str:
    return f"http://127.0.0.1:{proxy.port}{path}"


@pytest_twisted.inlineCallbacks
def test_walkthrough_weights_route(running: list[Twistd], tmp_path: Path):  # type: ignore[no-untyped-def]
    """
    If blue and green myapps sit behind the proxy, then BLUE_WEIGHT=1
    GREEN_WEIGHT=0 sends every request to blue's myapp, and the weights
    swapped send every request to green's (the split itself is tested in
    test_selection).
    """
    blue = start_twistd("myapp", [], {}, tmp_path)
    green = start_twistd("myapp", [], {"V2": "1"}, tmp_path)
    running += [blue, green]
    backends = {"BLUE": f"http://127.0.0.1:{blue.port}", "GREEN": f"http://127.0.0.1:{green.port}/"}
    all_blue = start_twistd(
        "sillyproxy", [], {**backends, "BLUE_WEIGHT": "1", "GREEN_WEIGHT": "0"}, tmp_path
    )
    all_green = start_twistd(
        "sillyproxy", [], {**backends, "BLUE_WEIGHT": "0", "GREEN_WEIGHT": "1"}, tmp_path
    )
    running += [all_blue, all_green]

    @pytest_twisted.inlineCallbacks
    def bodies(proxy: Twistd):  # type: ignore[no-untyped-def]
        answers = []
        for _ in range(10):
            response = yield treq.get(proxy_url(proxy))
            answers.append((response.code, (yield response.text())))
        return Counter(answers)

    host = socket.gethostname()
    assert (yield bodies(all_blue)) == Counter({(200, f"blue {host}\n"): 10})
    assert (yield bodies(all_green)) == Counter({(200, f"<h1>{host} (green)</h1>\n"): 10})
    assert " GET / blue 200 " in all_blue.log()
    assert " GET / green 200 " in all_green.log()


def test_configuration_error_exits(tmp_path: Path) -> None:
    """If the environment is bad, then twistd exits non-zero with every problem named and no traceback."""
    result = subprocess.run(
        twistd_command()
        + ["--nodaemon", "--pidfile=", "sillyproxy", "--listen", f"tcp:{free_port()}"],
        env={
            "PATH": "/usr/bin:/bin",
            "BLUE": "http://myapp-v1:8080",
            "GREEN_WEIGHT": "abc",
            "BLUE_WEIGHT": "4",
        },
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "GREEN_WEIGHT='abc': not an integer" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest_twisted.inlineCallbacks
def test_large_response_streams_intact(running: list[Twistd], tmp_path: Path, local_backend: int):  # type: ignore[no-untyped-def]
    """If the backend sends 50 MiB, then the client gets every byte, with the length declared."""
    proxy = start_twistd("sillyproxy", [], {"BLUE": f"http://127.0.0.1:{local_backend}"}, tmp_path)
    running.append(proxy)
    response = yield treq.get(proxy_url(proxy, "/big"), unbuffered=True)
    assert response.code == 200
    # Agent keeps framing to itself: the declared length is response.length.
    assert response.length == BIG_RESPONSE
    received = hashlib.sha256()
    size = 0

    def take(chunk: bytes) -> None:
        nonlocal size
        received.update(chunk)
        size += len(chunk)

    yield treq.collect(response, take)
    expected = hashlib.sha256()
    for chunk in pattern(BIG_RESPONSE):
        expected.update(chunk)
    assert size == BIG_RESPONSE
    assert received.hexdigest() == expected.hexdigest()


@pytest_twisted.inlineCallbacks
def test_large_upload_arrives_intact(running: list[Twistd], tmp_path: Path, local_backend: int):  # type: ignore[no-untyped-def]
    """If a client uploads 20 MiB, then the backend receives every byte."""
    proxy = start_twistd("sillyproxy", [], {"GREEN": f"http://127.0.0.1:{local_backend}"}, tmp_path)
    running.append(proxy)
    body = b"".join(pattern(BIG_UPLOAD))
    response = yield treq.put(proxy_url(proxy, "/upload"), data=body)
    text = yield response.content()
    assert response.code == 200
    assert text == b"%d %s /upload green" % (BIG_UPLOAD, hashlib.sha256(body).hexdigest().encode())


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes and read until the server closes (blocking; run it in a thread)."""
    with socket.create_connection(("127.0.0.1", port), timeout=START_TIMEOUT) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest_twisted.inlineCallbacks
def test_target_joined_byte_for_byte(running: list[Twistd], tmp_path: Path, local_backend: int):  # type: ignore[no-untyped-def]
    """If a backend has a base path, then the real Agent sends the client's target joined onto it untouched."""
    proxy = start_twistd(
        "sillyproxy", [], {"GREEN": f"http://127.0.0.1:{local_backend}/prefix/"}, tmp_path
    )
    running.append(proxy)
    answer = yield deferToThread(
        raw_exchange,
        proxy.port,
        b"GET /a%2Fb;x?q=1&r=%7E HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b" /prefix/a%2Fb;x?q=1&r=%7E green")

    absolute = yield deferToThread(
        raw_exchange,
        proxy.port,
        b"GET http://elsewhere.example/x?y HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n",
    )
    assert absolute.endswith(b" /prefix/x?y green")


@pytest_twisted.inlineCallbacks
def test_refused_backend_gives_502(running: list[Twistd], tmp_path: Path):  # type: ignore[no-untyped-def]
    """If the backend's port is closed, then the client gets a one-line 502 and the log names the colour."""
    proxy = start_twistd("sillyproxy", [], {"BLUE": f"http://127.0.0.1:{free_port()}"}, tmp_path)
    running.append(proxy)
    response = yield treq.get(proxy_url(proxy))
    body = yield response.text()
    assert (response.code, body) == (502, "backend refused the connection\n")
    assert "blue backend http://127.0.0.1:" in proxy.log()
    assert "Traceback" not in proxy.log()
