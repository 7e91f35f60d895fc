"""Peak memory of sillyproxy: a huge response to a slow client, a huge upload, 1,000 idle connections and 1,000 idle WebSocket tunnels."""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import free_port, nginx_conf, stop, wait_port  # noqa: E402

MIB = 1024 * 1024
GIB = 1024 * MIB

BACKEND_CONF = """
worker_processes 1;
daemon off;
pid {dir}/backend.pid;
error_log {dir}/backend-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_max_body_size 0;
  {temp_paths}
  server {{
    listen 127.0.0.1:{port};
    root {dir}/files;
    location = /upload {{ client_body_buffer_size 1m; proxy_pass http://127.0.0.1:{port}/discard; }}
    location = /discard {{ return 200 "stored\\n"; }}
    location = / {{ return 200 "ok\\n"; }}
  }}
}}
"""


@contextmanager
def nginx_backend(size: int = 0) -> Iterator[tuple[Path, int]]:
    """An nginx backend on 127.0.0.1 serving /, /big.bin (C{size} bytes) and /upload; (work dir, port)."""
    work = Path(tempfile.mkdtemp(prefix="sillyproxy-bench-"))
    # nginx's workers run unprivileged and must read the files.
    work.chmod(0o755)
    (work / "tmp").mkdir()
    (work / "files").mkdir()
    with open(work / "files" / "big.bin", "wb") as f:
        f.truncate(size)
    port = free_port()
    (work / "backend.conf").write_text(nginx_conf(BACKEND_CONF, work, port=port))
    backend = subprocess.Popen(["nginx", "-p", str(work), "-c", str(work / "backend.conf")], stdin=subprocess.DEVNULL)
    try:
        wait_port(port, backend)
        yield work, port
    finally:
        stop(backend)
        shutil.rmtree(work, ignore_errors=True)


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def start_proxy(backend_port: int, work: Path, max_body: str = "0") -> tuple[subprocess.Popen, int]:
    port = free_port()
    twistd = str(Path(sys.executable).with_name("twistd"))
    log = open(work / f"proxy-{port}.log", "wb")
    process = subprocess.Popen(
        [twistd, "--nodaemon", "--pidfile=", "--logfile=-", "sillyproxy", "--listen", f"tcp:{port}:interface=127.0.0.1"],
        env={
            **os.environ,
            "BLUE": f"http://127.0.0.1:{backend_port}",
            "SILLYPROXY_ADMIN_LISTEN": "none",
            "SILLYPROXY_ACCESS_LOG": "off",
            "SILLYPROXY_MAX_BODY": max_body,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    wait_port(port, process)
    return process, port


def warm(port: int) -> None:
    """One small request, so the baseline includes what the first request loads."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while s.recv(65536):
            pass


def read_response(s: socket.socket, rate: float, slow_seconds: float) -> tuple[int, str]:
    """Read a whole response, at C{rate} bytes/s for the first C{slow_seconds}."""
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    head, _, body = head.partition(b"\r\n\r\n")
    length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
    digest = hashlib.sha256(body)
    got = len(body)
    started = time.monotonic()
    while got < length:
        elapsed = time.monotonic() - started
        if elapsed < slow_seconds:
            ahead = got - rate * elapsed
            if ahead > 0:
                time.sleep(min(ahead / rate, 0.1))
                continue
            chunk = s.recv(min(65536, length - got))
        else:
            chunk = s.recv(min(4 * MIB, length - got))
        if not chunk:
            raise RuntimeError(f"connection closed after {got} of {length} bytes")
        digest.update(chunk)
        got += len(chunk)
    return got, digest.hexdigest()


def slow_download(backend_port: int, work: Path, size: int, slow_seconds: float) -> dict[str, float]:
    process, port = start_proxy(backend_port, work)
    try:
        warm(port)
        before = status_kib(process.pid, "VmHWM")
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            got, _ = read_response(s, rate=MIB, slow_seconds=slow_seconds)
        after = status_kib(process.pid, "VmHWM")
        return {"bytes": got, "baseline_mib": before / 1024, "extra_peak_mib": (after - before) / 1024}
    finally:
        stop(process)


def upload(backend_port: int, work: Path, size: int) -> dict[str, float]:
    process, port = start_proxy(backend_port, work, max_body="0")
    try:
        warm(port)
        before = status_kib(process.pid, "VmHWM")
        block = os.urandom(MIB)
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % size)
            for _ in range(size // MIB):
                s.sendall(block)
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        after = status_kib(process.pid, "VmHWM")
        status = answer.split(b"\r\n", 1)[0].decode()
        return {"status": status, "baseline_mib": before / 1024, "extra_peak_mib": (after - before) / 1024}
    finally:
        stop(process)


def held_connections_rss(
    backend_port: int, work: Path, count: int, request: bytes, answered: Callable[[bytes], bool]
) -> dict[str, float]:
    """RSS of a proxy holding C{count} connections, each sent C{request} and C{answered}, above the same proxy idle."""
    process, port = start_proxy(backend_port, work)
    sockets = []
    try:
        warm(port)
        time.sleep(0.5)
        before = status_kib(process.pid, "VmRSS")
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(request)
            sockets.append(s)
        for s in sockets:
            data = b""
            while not answered(data):
                data += s.recv(4096)
        time.sleep(1)
        after = status_kib(process.pid, "VmRSS")
        return {"count": count, "idle_rss_mib": before / 1024, "extra_rss_mib": (after - before) / 1024}
    finally:
        for s in sockets:
            s.close()
        stop(process)


def idle_connections(backend_port: int, work: Path, count: int) -> dict[str, float]:
    """C{count} idle keep-alive connections, each after one request."""
    return held_connections_rss(
        backend_port, work, count, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", lambda data: b"ok\n" in data
    )


@contextmanager
def myapp_backend(work: Path) -> Iterator[int]:
    """A myapp on 127.0.0.1, for its WebSocket /ws; its port."""
    port = free_port()
    twistd = str(Path(sys.executable).with_name("twistd"))
    log = open(work / f"myapp-{port}.log", "wb")
    process = subprocess.Popen(
        [twistd, "--nodaemon", "--pidfile=", "--logfile=-", "myapp", "--listen", f"tcp:{port}:interface=127.0.0.1"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_port(port, process)
        yield port
    finally:
        stop(process)


HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _switched(data: bytes) -> bool:
    if b"\r\n\r\n" not in data:
        return False
    if not data.startswith(b"HTTP/1.1 101 "):
        raise RuntimeError(f"no tunnel: {data[:80]!r}")
    return True


def idle_tunnels(work: Path, count: int) -> dict[str, float]:
    """C{count} open, idle WebSocket tunnels through the proxy to myapp."""
    with myapp_backend(work) as backend_port:
        return held_connections_rss(backend_port, work, count, HANDSHAKE, _switched)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--slow-seconds", type=float, default=30,
                        help="read at 1 MiB/s this long, then as fast as possible (1024 reads it all slowly)")
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--tunnels", type=int, default=1000)
    parser.add_argument("--only-tunnels", action="store_true", help="measure only the idle tunnels")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.idle)), hard))

    if args.only_tunnels:
        with nginx_backend(0) as (work, _):
            print_tunnels(work, args.tunnels)
        return
    size = args.size_mib * MIB
    with nginx_backend(size) as (work, backend_port):
        down = slow_download(backend_port, work, size, args.slow_seconds)
        print(f"{args.size_mib} MiB response, client at 1 MiB/s for {args.slow_seconds:.0f} s: "
              f"{down['bytes']} bytes, extra peak RSS {down['extra_peak_mib']:.1f} MiB "
              f"(baseline {down['baseline_mib']:.1f} MiB)")
        up = upload(backend_port, work, size)
        print(f"{args.size_mib} MiB upload: {up['status']}, extra peak RSS {up['extra_peak_mib']:.1f} MiB "
              f"(baseline {up['baseline_mib']:.1f} MiB)")
        idle = idle_connections(backend_port, work, args.idle)
        print(f"{args.idle} idle keep-alive connections: extra RSS {idle['extra_rss_mib']:.1f} MiB "
              f"(idle proxy {idle['idle_rss_mib']:.1f} MiB)")
        print_tunnels(work, args.tunnels)


def print_tunnels(work: Path, count: int) -> None:
    tunnels = idle_tunnels(work, count)
    print(f"{count} idle WebSocket tunnels (to myapp): extra RSS {tunnels['extra_rss_mib']:.1f} MiB "
          f"(idle proxy {tunnels['idle_rss_mib']:.1f} MiB)")


if __name__ == "__main__":
    main()
