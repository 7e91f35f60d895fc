"""Tests of the image's HEALTHCHECK probe and of the cheap `sillyproxy` package import it relies on."""

from __future__ import annotations

import http.server
import importlib.util
import io
import json
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import sillyproxy
from sillyproxy.healthcheck import _pid1_command, check_url, probe, run

ROOT = Path(__file__).resolve().parent.parent

# Top-level packages the probe must never import: Twisted and what rides on it.
HEAVY = ("twisted", "zope", "treq", "klein", "prometheus_client")

# Standard-library modules that would each add 10-40 ms of CPU to every probe
# (http.client pulls in email and ssl; socket.create_connection the idna codec).
COSTLY_STDLIB = ("http", "urllib.request", "email", "ssl", "encodings.idna", "typing")

# Run in a fresh interpreter: which modules importing `sillyproxy.healthcheck`
# and probing added, and the probe's exit status.  argv[1] is the admin port.
_PROBE_IN_A_FRESH_INTERPRETER = """
import json, sys
before = set(sys.modules)
import sillyproxy.healthcheck
status = sillyproxy.healthcheck.run(["twistd", "sillyproxy"], {"SILLYPROXY_ADMIN_LISTEN": "tcp:" + sys.argv[1]}, sys.stderr)
print(json.dumps({"status": status, "modules": sorted(set(sys.modules) - before)}))
"""

# The same, entered the way Docker does: `python -m sillyproxy.healthcheck`.
_MODULE_IN_A_FRESH_INTERPRETER = """
import json, runpy, sys
before = set(sys.modules)
try:
    runpy.run_module("sillyproxy.healthcheck", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    status = exit.code
print(json.dumps({"status": status, "modules": sorted(set(sys.modules) - before)}))
"""


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers /healthz 200, /redirect 302, /broken 500, anything else 404."""

    statuses = {"/healthz": 200, "/redirect": 302, "/broken": 500}

    def do_GET(self) -> None:
        status = self.statuses.get(self.path, 404)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        if status == 302:
            self.send_header("Location", "/elsewhere")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def admin_port() -> Iterator[int]:
    """The port of a tiny HTTP server on 127.0.0.1, standing in for the admin listener."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(5)


def _answer_once(reply: bytes) -> tuple[int, threading.Thread, socket.socket]:
    """A listener that accepts one connection, sends reply and closes it."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(4096)
            connection.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread, listener


def _fresh_interpreter(script: str, *args: str, env: dict[str, str] | None = None) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


def _in_standard_library(top_level: str) -> bool:
    """Whether a top-level module is Python's own (sys.stdlib_module_names is 3.10+)."""
    spec = importlib.util.find_spec(top_level)
    if spec is None or spec.origin is None:
        return False
    if spec.origin in ("built-in", "frozen"):
        return True
    origin = Path(spec.origin).resolve()
    return _STDLIB in origin.parents and "site-packages" not in origin.parts


def _third_party(modules: list[str]) -> list[str]:
    """The modules, by top-level name, that are neither the standard library nor sillyproxy."""
    return [m for m in modules if m.split(".")[0] != "sillyproxy" and not _in_standard_library(m.split(".")[0])]


def test_probe_imports_only_the_standard_library(admin_port: int) -> None:
    """If the probe module is imported and probes in a fresh interpreter, then no Twisted (or other third-party) module is imported."""
    outcome = _fresh_interpreter(_PROBE_IN_A_FRESH_INTERPRETER, str(admin_port))
    assert outcome["status"] == 0
    assert [m for m in outcome["modules"] if m.split(".")[0] in HEAVY] == []
    assert _third_party(outcome["modules"]) == []


def test_probe_avoids_the_costly_standard_library(admin_port: int) -> None:
    """If the probe module is imported and probes, then no HTTP client library, ssl, idna codec or typing is imported."""
    outcome = _fresh_interpreter(_PROBE_IN_A_FRESH_INTERPRETER, str(admin_port))
    assert outcome["status"] == 0
    costly = [m for m in outcome["modules"] if any(m == c or m.startswith(c + ".") for c in COSTLY_STDLIB)]
    assert costly == []


def test_probe_run_as_docker_runs_it_imports_no_twisted(admin_port: int) -> None:
    """If `python -m sillyproxy.healthcheck` runs as the HEALTHCHECK does, then no Twisted (or other third-party) module is imported."""
    env = {"PATH": "/usr/bin:/bin", "SILLYPROXY_ADMIN_LISTEN": f"tcp:{admin_port}"}
    outcome = _fresh_interpreter(_MODULE_IN_A_FRESH_INTERPRETER, env=env)
    # It asks whatever this machine's PID 1 is; outside a container that is
    # not myapp, so it asks the stand-in admin listener.
    asks_the_stand_in = check_url(_pid1_command(), env) == f"http://127.0.0.1:{admin_port}/healthz"
    assert outcome["status"] == 0 or not asks_the_stand_in
    assert [m for m in outcome["modules"] if m.split(".")[0] in HEAVY] == []
    assert _third_party(outcome["modules"]) == []


def test_package_import_is_lazy() -> None:
    """If `sillyproxy` is imported, then nothing beyond the standard library is, until a public name is used."""
    script = "import json, sys; before = set(sys.modules); import sillyproxy; print(json.dumps(sorted(set(sys.modules) - before)))"
    modules = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True).stdout)
    assert _third_party(modules) == []


def test_every_public_name_resolves() -> None:
    """If a name in `sillyproxy.__all__` is asked for, then it is the object from its private module."""
    from sillyproxy import _config, _forward, _routing, _selection, _site

    homes = {_config, _forward, _routing, _selection, _site}
    for name in sillyproxy.__all__:
        value = getattr(sillyproxy, name)
        if name != "__version__":
            assert any(getattr(home, name, None) is value for home in homes), name
    assert set(sillyproxy.__all__) <= set(dir(sillyproxy))


def test_unknown_name_is_an_attribute_error() -> None:
    """If a name the package does not export is asked for, then AttributeError is raised (so hasattr and getattr defaults work)."""
    assert not hasattr(sillyproxy, "NoSuchThing")
    with pytest.raises(ImportError):
        from sillyproxy import NoSuchThing  # noqa: F401


def test_version_comes_from_pyproject() -> None:
    """If the project is installed, then `sillyproxy.__version__` (and the twistd plugin's) is the version pyproject.toml declares."""
    tomllib = pytest.importorskip("tomllib")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    from sillyproxy import tap

    assert sillyproxy.__version__ == declared
    assert tap.__version__ == declared


def test_version_is_written_nowhere_else() -> None:
    """If someone writes the version into the package or the Dockerfile again, then this fails."""
    tomllib = pytest.importorskip("tomllib")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for path in [ROOT / "src" / "sillyproxy" / "__init__.py", ROOT / "Dockerfile"]:
        assert f'"{declared}"' not in path.read_text(), path


def test_version_without_installed_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the distribution is not installed (a bare source tree), then the version is a PEP 440 placeholder, not an error."""
    import importlib.metadata

    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert sillyproxy._installed_version() == "0+unknown"


@pytest.mark.parametrize(
    "command, environ, url",
    [
        (["twistd", "--nodaemon", "sillyproxy"], {}, "http://127.0.0.1:9901/healthz"),
        (["twistd", "sillyproxy"], {"SILLYPROXY_ADMIN_LISTEN": "tcp:9000"}, "http://127.0.0.1:9000/healthz"),
        (["twistd", "sillyproxy"], {"SILLYPROXY_ADMIN_LISTEN": "reuseport:9002:interface=0.0.0.0"}, "http://127.0.0.1:9002/healthz"),
        (["twistd", "sillyproxy"], {"SILLYPROXY_ADMIN_LISTEN": "none"}, None),
        (["twistd", "--nodaemon", "myapp"], {}, "http://127.0.0.1:8080/healthz"),
        (["twistd", "myapp", "--listen", "tcp:7000"], {}, "http://127.0.0.1:7000/healthz"),
        (["twistd", "myapp", "--listen", "unix:/run/app.sock"], {}, "http://127.0.0.1:8080/healthz"),
    ],
)
def test_healthcheck_asks_the_right_thing(command: list[str], environ: dict[str, str], url: str | None) -> None:
    """If the container runs the proxy or myapp, then the HEALTHCHECK asks that app."""
    assert check_url(command, environ) == url


@pytest.mark.parametrize("path", ["/healthz", "/redirect"])
def test_success_and_redirect_are_healthy(admin_port: int, path: str) -> None:
    """If the app answers 2xx or 3xx, then the probe finds it healthy (and does not follow the redirect)."""
    assert probe(admin_port, path, timeout=5) is None


def test_server_error_is_unhealthy(admin_port: int) -> None:
    """If the app answers 500, then the probe says so with the status."""
    assert probe(admin_port, "/broken", timeout=5) == "HTTP 500 Internal Server Error"


def test_refused_connection_is_unhealthy() -> None:
    """If nothing listens on the port, then the probe reports the refused connection."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert "ConnectionRefusedError" in probe(port, "/healthz", timeout=5)


def test_silent_listener_times_out_within_the_timeout() -> None:
    """If the app accepts but never answers, then the probe gives up after its timeout and says it timed out."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        started = time.monotonic()
        problem = probe(listener.getsockname()[1], "/healthz", timeout=0.3)
        elapsed = time.monotonic() - started
    assert problem is not None and "timed out" in problem
    assert 0.25 <= elapsed < 2


@pytest.mark.parametrize(
    "reply, problem",
    [
        (b"", "connection closed without a response"),
        (b"SSH-2.0-OpenSSH\r\n", "not an HTTP status line: b'SSH-2.0-OpenSSH'"),
        (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\r\n", "HTTP 503 Service Unavailable"),
        (b"HTTP/1.0 204\r\n\r\n", None),
    ],
)
def test_answer_is_judged_by_its_status_line(reply: bytes, problem: str | None) -> None:
    """If the app answers with anything but a 2xx/3xx status line, then the probe is unhealthy and says what it got."""
    port, thread, listener = _answer_once(reply)
    with listener:
        assert probe(port, "/healthz", timeout=5) == problem
        thread.join(5)


def test_run_reports_an_unhealthy_app_on_stderr() -> None:
    """If the proxy's admin listener does not answer, then the exit status is 1 and stderr names the URL and the reason."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stderr = io.StringIO()
    assert run(["twistd", "sillyproxy"], {"SILLYPROXY_ADMIN_LISTEN": f"tcp:{port}"}, stderr, timeout=5) == 1
    assert stderr.getvalue().startswith(f"unhealthy: http://127.0.0.1:{port}/healthz: ConnectionRefusedError")


def test_run_is_healthy_when_the_app_answers(admin_port: int) -> None:
    """If the proxy's admin /healthz answers 200, then the exit status is 0 and nothing is printed."""
    stderr = io.StringIO()
    assert run(["twistd", "sillyproxy"], {"SILLYPROXY_ADMIN_LISTEN": f"tcp:{admin_port}"}, stderr, timeout=5) == 0
    assert stderr.getvalue() == ""


def test_run_without_an_admin_listener_asks_nothing() -> None:
    """If the admin listener is turned off, then the probe passes without connecting anywhere."""
    stderr = io.StringIO()
    assert run(["twistd", "sillyproxy"], {"SILLYPROXY_ADMIN_LISTEN": "none"}, stderr, timeout=0.01) == 0
    assert stderr.getvalue() == ""
