"""Start and stop real twistd processes on 127.0.0.1 for the end-to-end tests."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import define

# Generous: a loaded CI machine may take seconds to import Twisted.
START_TIMEOUT = 30.0


def twistd_command() -> list[str]:
    """The twistd of the Python running the tests, so the installed plugins are found."""
    beside = Path(sys.executable).with_name("twistd")
    if beside.exists():
        return [str(beside)]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@define
class Twistd:
    """A running twistd, its port, and where its log goes."""

    process: subprocess.Popen
    port: int
    log_path: Path
    admin_port: int = 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logged(self, text: str, timeout: float = 10.0) -> bool:
        """Whether C{text} appears in the log within C{timeout} seconds (log lines are written in batches)."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def admin(self, path: str) -> tuple[int, bytes]:
        """GET C{path} from the admin listener: status code and body."""
        connection = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def status(self) -> dict[str, Any]:
        """The admin listener's /status."""
        return json.loads(self.admin("/status")[1])  # type: ignore[no-any-return]

    def terminate(self) -> None:
        """Send SIGTERM, as docker stop and a rolling update do."""
        self.process.terminate()

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def start_twistd(
    plugin: str,
    arguments: Sequence[str],
    environ: Mapping[str, str],
    log_dir: Path,
    port: int | None = None,
    listen: str | None = None,
    runner: Sequence[str] | None = None,
) -> Twistd:
    """
    Start C{twistd PLUGIN --listen tcp:PORT ...} and wait until it accepts
    connections.  With C{listen} (for a shared C{reuseport:} port, where a
    connection proves nothing), wait for the proxy's own "listening" line.
    C{runner} replaces C{twistd --nodaemon --pidfile= --logfile=-} (with
    C{twist}, for one).
    """
    port = free_port() if port is None else port
    log_path = log_dir / f"{plugin}-{port}-{time.monotonic_ns()}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLUE", "GREEN", "SILLYPROXY", "V2"))}
    # Each proxy gets its own admin port: the default 9901 would clash.
    admin_port = free_port()
    env["SILLYPROXY_ADMIN_LISTEN"] = f"tcp:{admin_port}:interface=127.0.0.1"
    env.update(environ)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            list(runner or twistd_command() + ["--nodaemon", "--pidfile=", "--logfile=-"])
            + [plugin]
            + ["--listen", listen or f"tcp:{port}:interface=127.0.0.1"]
            + list(arguments),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    running = Twistd(process, port, log_path, admin_port)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{plugin} exited with {process.returncode}:\n{running.log()}")
        if listen is not None:
            if "sillyproxy listening on" in running.log():
                return running
            time.sleep(0.05)
            continue
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return running
        except OSError:
            time.sleep(0.05)
    running.stop()
    raise RuntimeError(f"{plugin} did not listen on {port} within {START_TIMEOUT}s:\n{running.log()}")
