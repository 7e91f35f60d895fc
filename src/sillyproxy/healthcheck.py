"""The image's HEALTHCHECK: `python -m sillyproxy.healthcheck` exits 0 if this container's app answers.

Docker runs this every few seconds in every container, so it must cost next
to nothing: it imports only `socket` and `sillyproxy/__init__` (which imports
nothing eagerly).  Importing Twisted cost 1.0-1.4 s of CPU per probe, enough
on a busy 2-core node for probes to miss their timeout and get healthy tasks
replaced; even http.client (with email and ssl) would triple the probe's cost.
"""

from __future__ import annotations

import os
import socket
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import TextIO

__all__ = ["PROBE_TIMEOUT", "check_url", "main", "probe", "run"]

# Below the HEALTHCHECK's --timeout=3s, so a slow answer is reported by this
# probe, with its reason in `docker inspect`, rather than killed by Docker.
PROBE_TIMEOUT = 2.0

# The status line must arrive within this many bytes.
_MAX_STATUS_LINE = 8192


def _port(description: str, default: int) -> int | None:
    """The TCP port of an endpoint description like tcp:9901 or reuseport:8080:interface=..."""
    parts = description.split(":")
    if parts[0] in ("tcp", "tcp6", "reuseport") and len(parts) > 1 and parts[1].isdigit():
        return int(parts[1])
    if description.isdigit():
        return int(description)
    return None if description.strip().lower() == "none" else default


def _target(command: Sequence[str], environ: Mapping[str, str]) -> tuple[int, str] | None:
    """The local port and path to ask, or None if there is nothing to ask."""
    if "myapp" in command:
        listen = "tcp:8080"
        if "--listen" in command[:-1]:
            listen = command[command.index("--listen") + 1]
        port = _port(listen, 8080)
        # A path MYAPP_ERROR_RATE spares (any path answers alike).
        return None if port is None else (port, "/healthz")
    port = _port(environ.get("SILLYPROXY_ADMIN_LISTEN", "tcp:9901"), 9901)
    return None if port is None else (port, "/healthz")


def check_url(command: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """
    What to ask, given PID 1's command line: the proxy's admin /healthz, or
    for the demo backend, its page at /healthz.  None if there is nothing to ask.
    """
    target = _target(command, environ)
    return None if target is None else f"http://127.0.0.1:{target[0]}{target[1]}"


def probe(port: int, path: str, timeout: float = PROBE_TIMEOUT, host: str = "127.0.0.1") -> str | None:
    """
    GET path from host (an IPv4 address) and port; None if the status is
    2xx or 3xx within timeout seconds in all, else why not.  Only the status
    line is read, over a plain socket: the HTTP client libraries cost more
    CPU to import than the rest of the probe, and no proxy from the
    environment is consulted.
    """
    deadline = time.monotonic() + timeout
    try:
        # Not create_connection: its getaddrinfo imports the idna codec
        # (~20 ms), and the host is always an IPv4 literal.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout)
            connection.connect((host, port))
            connection.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode("ascii"))
            head = b""
            while b"\r\n" not in head and len(head) < _MAX_STATUS_LINE:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise socket.timeout("timed out")
                connection.settimeout(remaining)
                chunk = connection.recv(_MAX_STATUS_LINE)
                if not chunk:
                    break
                head += chunk
    except OSError as e:
        return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    line = head.split(b"\r\n", 1)[0]
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return f"not an HTTP status line: {line[:80]!r}" if line else "connection closed without a response"
    status = int(parts[1])
    if 200 <= status < 400:
        return None
    return "HTTP " + line[len(parts[0]) :].strip().decode("latin-1")


def run(command: Sequence[str], environ: Mapping[str, str], stderr: TextIO, timeout: float = PROBE_TIMEOUT) -> int:
    """The exit status for a container whose PID 1 runs command: 0 if healthy, 1 if not (and why, on stderr)."""
    target = _target(command, environ)
    if target is None:
        return 0
    problem = probe(*target, timeout=timeout)
    if problem is None:
        return 0
    print(f"unhealthy: {check_url(command, environ)}: {problem}", file=stderr)
    return 1


def _pid1_command() -> list[str]:
    try:
        with open("/proc/1/cmdline", "rb") as cmdline:
            return cmdline.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def main() -> int:
    """Probe this container's app, as the image's HEALTHCHECK does."""
    return run(_pid1_command(), os.environ, sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
