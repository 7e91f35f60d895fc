"""The image's HEALTHCHECK: `python -m sillyproxy.healthcheck` exits 0 if this container's app answers."""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["check_url", "main"]


def _port(description: str, default: int) -> int | None:
    """The TCP port of an endpoint description like tcp:9901 or reuseport:8080:interface=..."""
    parts = description.split(":")
    if parts[0] in ("tcp", "tcp6", "reuseport") and len(parts) > 1 and parts[1].isdigit():
        return int(parts[1])
    if description.isdigit():
        return int(description)
    return None if description.strip().lower() == "none" else default


def check_url(command: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """
    What to ask, given PID 1's command line: the proxy's admin /healthz, or
    for the demo backend, its own page.  None if there is nothing to ask.
    """
    if "myapp" in command:
        listen = "tcp:8080"
        if "--listen" in command[:-1]:
            listen = command[command.index("--listen") + 1]
        port = _port(listen, 8080)
        return None if port is None else f"http://127.0.0.1:{port}/"
    port = _port(environ.get("SILLYPROXY_ADMIN_LISTEN", "tcp:9901"), 9901)
    return None if port is None else f"http://127.0.0.1:{port}/healthz"


def main() -> int:
    try:
        command = Path("/proc/1/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        command = []
    url = check_url(command, os.environ)
    if url is None:
        return 0
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if 200 <= response.status < 400 else 1
    except Exception as e:
        print(f"unhealthy: {url}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
