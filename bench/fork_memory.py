"""
Idle memory of the worker design not taken: fork after import.

One process imports what a worker imports, freezes its heap (gc.freeze),
and forks two workers, each of which installs its own epoll reactor and
serves one request.  Prints each process's RSS and PSS (PSS counts the
pages they share once), to set beside bench/workers.py's figures for the
design in use, where the supervisor starts each worker as a fresh
interpreter.

  .venv/bin/python bench/fork_memory.py

Why it is not the design in use: twistd installs the reactor before the
plugin runs, so a supervisor that forks a worker (at start or to replace
one) hands it its own epoll instance and waker, and Twisted has no public
way to give the child a reactor of its own.  This script forks before any
reactor exists, which a twistd plugin cannot do.  Talks to 127.0.0.1 only.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import free_port  # noqa: E402


def kib(pid: int, path: str, field: str) -> int:
    for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def serve(port: int) -> None:
    """In a forked child: a reactor of its own, then the proxy, as a worker would run."""
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor

    from sillyproxy.tap import Options, makeService

    options = Options()
    options.parseOptions(["--listen", f"tcp:{port}:interface=127.0.0.1"])
    service = makeService(options, reactor)
    service.privilegedStartService()
    service.startService()
    reactor.run()  # type: ignore[attr-defined]


def main() -> None:
    # A backend that refuses: each worker answers 502, which is enough to
    # run the request path once.
    os.environ.update(BLUE=f"http://127.0.0.1:{free_port()}", SILLYPROXY_ADMIN_LISTEN="none")
    import twisted.internet.epollreactor  # noqa: F401
    import twisted.web.client  # noqa: F401
    import twisted.web.server  # noqa: F401

    import sillyproxy.tap  # noqa: F401

    assert "twisted.internet.reactor" not in sys.modules
    gc.collect()
    gc.freeze()
    ports = [free_port(), free_port()]
    workers = []
    for port in ports:
        pid = os.fork()
        if pid == 0:
            try:
                serve(port)
            finally:
                os._exit(0)
        workers.append(pid)
    try:
        for port in ports:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
                except urllib.error.HTTPError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
                else:
                    break
        time.sleep(1)
        total = 0
        print("| process | RSS MiB | PSS MiB |\n|---|---:|---:|")
        for name, pid in [("parent (imports, frozen)", os.getpid())] + [
            (f"worker {i}", pid) for i, pid in enumerate(workers)
        ]:
            pss = kib(pid, "smaps_rollup", "Pss")
            total += pss
            print(f"| {name} | {kib(pid, 'status', 'VmRSS') / 1024:.0f} | {pss / 1024:.0f} |")
        print(f"| all | | {total / 1024:.0f} |")
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
