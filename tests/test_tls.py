"""
TLS termination (`ssl:` listeners) and certificate reload on SIGHUP: in
memory against sillyproxy._tls, and end to end with real twistd processes
and a TLS client that trusts only the certificates made here.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
from OpenSSL import SSL
from twisted.internet import reactor
from twisted.internet.error import VerifyError
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.testing import MemoryReactorClock
from twisted.internet.threads import deferToThread
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from sillyproxy._tls import TLSListeners, read_server_tls

from .backends import HeaderRecorder
from .certificates import (
    Credentials,
    client_context,
    common_name,
    install,
    make_credentials,
    served_common_name,
    ssl_description,
    temporary_directory,
)
from .processes import Twistd, free_port, start_twistd, twistd_command


def messages(events: list[dict]) -> list[str]:  # type: ignore[type-arg]
    return [event["log_format"].format(**event) for event in events]


class ReadTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = temporary_directory(self)
        self.a = make_credentials(self.directory, "a.example")

    def test_reads_what_the_description_names(self) -> None:
        """If an ssl: description is read, then the options carry the certificate and key in the files it names."""
        options = read_server_tls(ssl_description(0, self.a.key_path, self.a.cert_path))
        self.assertEqual(common_name(SSL.Connection(options.getContext(), None)), "a.example")

    def test_wrapped_descriptions_are_read_too(self) -> None:
        """If the ssl: endpoint sits inside haproxy:, then its TLS settings are read all the same."""
        description = "haproxy:" + ssl_description(0, self.a.key_path, self.a.cert_path)
        options = read_server_tls(description)
        self.assertEqual(common_name(SSL.Connection(options.getContext(), None)), "a.example")

    def test_missing_file(self) -> None:
        """If a file the description names is missing, then reading fails."""
        self.assertRaises(
            Exception, read_server_tls, ssl_description(0, self.directory / "gone.key", self.a.cert_path)
        )

    def test_not_tls(self) -> None:
        """If the description is not a TLS listener, then reading says so."""
        caught = self.assertRaises(ValueError, read_server_tls, "tcp:0")
        self.assertEqual(str(caught), "not a TLS listener")


class ReloadTests(SynchronousTestCase):
    """A listener that TLSListeners made, on a memory reactor, reloaded as SIGHUP would."""

    def setUp(self) -> None:
        self.directory = temporary_directory(self)
        self.a = make_credentials(self.directory, "a.example")
        self.b = make_credentials(self.directory, "b.example")
        self.key = self.directory / "live.key"
        self.cert = self.directory / "live.pem"
        install(self.a, self.key, self.cert)
        self.reactor = MemoryReactorClock()
        self.listeners = TLSListeners(self.reactor)
        self.description = ssl_description(8443, self.key, self.cert)

    def listen(self, description: str | None = None) -> object:
        """Listen as the service does; return the connection creator the reactor got."""
        endpoint = self.listeners.endpoint(description or self.description)
        self.successResultOf(endpoint.listen(Site(Resource())))
        port, _, creator, _, interface = self.reactor.sslServers[-1]
        self.assertEqual((port, interface), (8443, "127.0.0.1"))
        return creator

    def test_listens_with_a_swappable_creator(self) -> None:
        """If an ssl: listener starts, then its connections come from a connection creator that serves the certificate on disk, and its start is logged."""
        with capturedLogs() as events:
            creator = self.listen()
        self.assertTrue(IOpenSSLServerConnectionCreator.providedBy(creator))
        self.assertEqual(served_common_name(creator), "a.example")
        [line] = messages(events)
        self.assertTrue(line.startswith(f"TLS certificate for {self.description}: CN=a.example, valid until "), line)

    def test_reload_serves_the_new_certificate(self) -> None:
        """If the files are replaced and reloaded, then new connections get the new certificate, and existing ones keep theirs."""
        creator = self.listen()
        existing = creator.serverConnectionForTLS(None)  # type: ignore[attr-defined]
        install(self.b, self.key, self.cert)
        with capturedLogs() as events:
            self.assertEqual(self.listeners.reload(), 1)
        self.assertEqual(served_common_name(creator), "b.example")
        self.assertEqual(common_name(existing), "a.example")
        [line] = messages(events)
        self.assertTrue(line.startswith(f"TLS certificate for {self.description} reloaded: CN=b.example, valid until "), line)

    def test_bad_files_keep_the_certificate(self) -> None:
        """If the files are missing, not PEM, or a key that does not match the certificate, then the old certificate stays, and one line says why."""
        creator = self.listen()
        cases = [
            (lambda: self.cert.unlink(), "No such file or directory"),
            (lambda: self.cert.write_bytes(b"not a certificate\n"), "no usable PEM key and certificate"),
            (lambda: self.key.write_bytes(b"-----BEGIN PRIVATE KEY-----\ntrunc"), "no usable PEM key and certificate"),
            (
                lambda: install(self.b, self.directory / "other.key", self.cert),
                "Certificate public and private keys do not match.",
            ),
        ]
        for spoil, reason in cases:
            install(self.a, self.key, self.cert)
            spoil()
            with capturedLogs() as events:
                self.assertEqual(self.listeners.reload(), 0)
            self.assertEqual(served_common_name(creator), "a.example")
            [event] = events
            line = messages(events)[0]
            self.assertEqual(event["log_level"].name, "error")
            self.assertTrue(
                line.startswith(f"TLS certificate for {self.description} not reloaded, still serving CN=a.example: "), line
            )
            self.assertIn(reason, line)
            self.assertNotIn("\n", line)

    def test_secret_volume_update(self) -> None:
        """
        If the files are symlinks into a directory that is swapped at once
        (how the kubelet updates a mounted Secret), then a reload follows the
        links to the new certificate.
        """
        volume = self.directory / "volume"
        volume.mkdir()
        for version, credentials in (("v1", self.a), ("v2", self.b)):
            (volume / version).mkdir()
            install(credentials, volume / version / "tls.key", volume / version / "tls.crt")
        (volume / "..data").symlink_to("v1")
        for name in ("tls.key", "tls.crt"):
            (volume / name).symlink_to(f"..data/{name}")
        creator = self.listen(ssl_description(8443, volume / "tls.key", volume / "tls.crt"))
        self.assertEqual(served_common_name(creator), "a.example")
        (volume / "..data_tmp").symlink_to("v2")
        os.replace(volume / "..data_tmp", volume / "..data")
        self.assertEqual(self.listeners.reload(), 1)
        self.assertEqual(served_common_name(creator), "b.example")

    def test_only_tls_listeners_reload(self) -> None:
        """If plain and TLS listeners run together, then a reload re-reads the TLS one only."""
        self.successResultOf(self.listeners.endpoint("tcp:8080").listen(Site(Resource())))
        creator = self.listen()
        install(self.b, self.key, self.cert)
        self.assertEqual(self.listeners.reload(), 1)
        self.assertEqual(served_common_name(creator), "b.example")
        self.assertEqual([port for port, *_ in self.reactor.tcpServers], [8080])

    def test_nothing_to_reload(self) -> None:
        """If no listener speaks TLS, then a reload does nothing and says so."""
        self.successResultOf(self.listeners.endpoint("tcp:8080").listen(Site(Resource())))
        with capturedLogs() as events:
            self.assertEqual(self.listeners.reload(), 0)
        self.assertEqual(messages(events), ["SIGHUP: no TLS listener, so no certificate to reload"])

    def test_mismatched_key_refused(self) -> None:
        """If the key does not match the certificate, then reading refuses them (so --check and start-up do too)."""
        install(self.b, self.directory / "other.key", self.cert)
        caught = self.assertRaises(VerifyError, read_server_tls, self.description)
        self.assertEqual(str(caught), "Certificate public and private keys do not match.")


# End to end: real twistd processes.


def https_get(port: int, context: ssl.SSLContext, path: str = "/") -> tuple[int, bytes, bytes]:
    """GET over a new TLS connection: (status, body, the server certificate's DER)."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        assert connection.sock is not None
        return response.status, body, connection.sock.getpeercert(binary_form=True) or b""
    finally:
        connection.close()


def plain_get(port: int, path: str = "/") -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.status, response.read()


@pytest.fixture
def recorder() -> Iterator[tuple[HeaderRecorder, int]]:
    resource = HeaderRecorder()
    port = reactor.listenTCP(0, Site(resource), interface="127.0.0.1")
    yield resource, port.getHost().port
    port.stopListening()


@pytest.fixture
def credentials(tmp_path: Path) -> tuple[Credentials, Credentials]:
    return make_credentials(tmp_path, "a.example"), make_credentials(tmp_path, "b.example")


def test_tls_termination_in_front_of_myapp(running: list[Twistd], tmp_path: Path, credentials) -> None:  # type: ignore[no-untyped-def]
    """If the proxy listens with ssl: in front of myapp, then a client that trusts the certificate gets myapp's answer over TLS."""
    a, _ = credentials
    myapp = start_twistd("myapp", [], {}, tmp_path)
    running.append(myapp)
    port = free_port()
    proxy = start_twistd(
        "sillyproxy",
        [],
        {"BLUE": f"http://127.0.0.1:{myapp.port}"},
        tmp_path,
        port=port,
        listen=ssl_description(port, a.key_path, a.cert_path),
    )
    running.append(proxy)
    status, body, der = https_get(port, client_context(a))
    assert (status, der) == (200, a.der)
    assert body.startswith(b"blue "), body
    assert proxy.logged(f"TLS certificate for {ssl_description(port, a.key_path, a.cert_path)}: CN=a.example")
    # A client that trusts nothing here refuses the certificate.
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(port, ssl.create_default_context(cadata=make_credentials(tmp_path, "c.example").cert_pem.decode()))


@pytest_twisted.inlineCallbacks
def test_backend_sees_https(recorder, tmp_path: Path, credentials):  # type: ignore[no-untyped-def]
    """If a request arrives over TLS, then the backend sees X-Forwarded-Proto: https and proto=https in Forwarded."""
    resource, backend_port = recorder
    a, _ = credentials
    port = free_port()
    proxy = start_twistd(
        "sillyproxy",
        [],
        {"BLUE": f"http://127.0.0.1:{backend_port}"},
        tmp_path,
        port=port,
        listen=ssl_description(port, a.key_path, a.cert_path),
    )
    try:
        status, body, _ = yield deferToThread(https_get, port, client_context(a), "/tls")
        assert (status, body) == (200, b"ok")
        headers = resource.seen[-1]
        assert headers[b"x-forwarded-proto"] == [b"https"]
        assert headers[b"forwarded"] == [f"for=127.0.0.1;proto=https;host=\"127.0.0.1:{port}\"".encode()]
    finally:
        proxy.stop()


@pytest_twisted.inlineCallbacks
def test_plain_and_tls_listeners_at_once(recorder, tmp_path: Path, credentials):  # type: ignore[no-untyped-def]
    """
    If --listen is given twice, plain and TLS, then the proxy serves both
    with the same routes (X-Forwarded-Proto http and https), names both at
    start and in /status, and SIGTERM closes both and exits 0.
    """
    resource, backend_port = recorder
    a, _ = credentials
    tls_port = free_port()
    tls = ssl_description(tls_port, a.key_path, a.cert_path)
    proxy = start_twistd(
        "sillyproxy", ["--listen", tls], {"BLUE": f"http://127.0.0.1:{backend_port}"}, tmp_path
    )
    try:
        plain = f"tcp:{proxy.port}:interface=127.0.0.1"
        assert proxy.logged(f"sillyproxy listening on {plain} {tls}"), proxy.log()
        status, _ = yield deferToThread(plain_get, proxy.port, "/plain")
        assert status == 200
        assert resource.seen[-1][b"x-forwarded-proto"] == [b"http"]
        status, _, _ = yield deferToThread(https_get, tls_port, client_context(a), "/tls")
        assert status == 200
        assert resource.seen[-1][b"x-forwarded-proto"] == [b"https"]
        _, body = yield deferToThread(plain_get, proxy.admin_port, "/status")
        assert json.loads(body)["listen"] == f"{plain} {tls}"
        proxy.terminate()
        assert (yield deferToThread(proxy.wait)) == 0
        for port in (proxy.port, tls_port):
            with pytest.raises(OSError):
                plain_get(port)
    finally:
        proxy.stop()


def test_several_listeners_from_the_variable(running: list[Twistd], tmp_path: Path, credentials) -> None:  # type: ignore[no-untyped-def]
    """If SILLYPROXY_LISTEN names a plain and a TLS endpoint, then the proxy answers on both (here in front of myapp)."""
    a, _ = credentials
    myapp = start_twistd("myapp", [], {}, tmp_path)
    running.append(myapp)
    plain_port, tls_port = free_port(), free_port()
    listen = f"tcp:{plain_port}:interface=127.0.0.1 {ssl_description(tls_port, a.key_path, a.cert_path)}"
    # start_twistd always passes --listen, which would win over the variable.
    proxy = _start_with_variable(tmp_path, myapp.port, listen, plain_port)
    running.append(proxy)
    assert plain_get(plain_port)[1].startswith(b"blue ")
    status, body, der = https_get(tls_port, client_context(a))
    assert (status, der) == (200, a.der) and body.startswith(b"blue ")


def _start_with_variable(tmp_path: Path, backend_port: int, listen: str, port: int) -> Twistd:
    """Start the proxy with SILLYPROXY_LISTEN and no --listen at all."""
    import subprocess

    log_path = tmp_path / f"variable-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLUE", "GREEN", "SILLYPROXY"))}
    env.update(
        {
            "BLUE": f"http://127.0.0.1:{backend_port}",
            "SILLYPROXY_LISTEN": listen,
            "SILLYPROXY_ADMIN_LISTEN": "none",
        }
    )
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*twistd_command(), "--nodaemon", "--pidfile=", "--logfile=-", "sillyproxy"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    proxy = Twistd(process, port, log_path)
    if not proxy.logged("sillyproxy listening on", timeout=30):
        proxy.stop()
        raise RuntimeError(proxy.log())
    return proxy


def test_sighup_reloads_the_certificate(running: list[Twistd], tmp_path: Path, credentials) -> None:  # type: ignore[no-untyped-def]
    """
    If the key and certificate files are replaced and the proxy gets
    SIGHUP, then new connections get the new certificate while an open
    connection carries on; files that do not load after a later SIGHUP are
    logged and the certificate in use stays.
    """
    a, b = credentials
    myapp = start_twistd("myapp", [], {}, tmp_path)
    running.append(myapp)
    live = tmp_path / "live"
    live.mkdir()
    key, cert = live / "tls.key", live / "tls.crt"
    install(a, key, cert)
    port = free_port()
    description = ssl_description(port, key, cert)
    proxy = start_twistd(
        "sillyproxy", [], {"BLUE": f"http://127.0.0.1:{myapp.port}"}, tmp_path, port=port, listen=description
    )
    running.append(proxy)
    both = client_context(a, b)

    # A keep-alive connection, opened with certificate A.
    old = http.client.HTTPSConnection("127.0.0.1", port, context=both, timeout=10)
    try:
        old.request("GET", "/")
        response = old.getresponse()
        assert (response.status, response.read()[:5]) == (200, b"blue ")
        assert old.sock is not None
        assert old.sock.getpeercert(binary_form=True) == a.der

        install(b, key, cert)
        proxy.process.send_signal(signal.SIGHUP)
        assert proxy.logged(f"TLS certificate for {description} reloaded: CN=b.example"), proxy.log()
        assert https_get(port, both)[2] == b.der
        # The open connection still works, on its first certificate.
        old.request("GET", "/")
        response = old.getresponse()
        assert (response.status, response.read()[:5]) == (200, b"blue ")
        assert old.sock.getpeercert(binary_form=True) == a.der
    finally:
        old.close()

    # A half-written certificate: logged, and B stays.
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\ntruncated")
    proxy.process.send_signal(signal.SIGHUP)
    assert proxy.logged(f"TLS certificate for {description} not reloaded, still serving CN=b.example: "), proxy.log()
    assert https_get(port, both)[2] == b.der
    # A missing key: the same.
    install(b, key, cert)
    key.unlink()
    proxy.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while proxy.log().count("not reloaded") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "No such file or directory" in proxy.log().split("not reloaded")[-1], proxy.log()
    status, _, der = https_get(port, both)
    assert (status, der) == (200, b.der)
    assert proxy.process.poll() is None
    assert "Traceback" not in proxy.log()


def test_sighup_and_log_rotation_coexist(running: list[Twistd], tmp_path: Path, credentials) -> None:  # type: ignore[no-untyped-def]
    """
    If twistd logs to a file, then SIGHUP reloads certificates (it does not
    end the process) and SIGUSR1 still rotates the log file, as twistd does.
    """
    a, b = credentials
    myapp = start_twistd("myapp", [], {}, tmp_path)
    running.append(myapp)
    key, cert = tmp_path / "tls.key", tmp_path / "tls.crt"
    install(a, key, cert)
    tls_port = free_port()
    log_file = tmp_path / "proxy.log"
    proxy = start_twistd(
        "sillyproxy",
        ["--listen", ssl_description(tls_port, key, cert)],
        {"BLUE": f"http://127.0.0.1:{myapp.port}"},
        tmp_path,
        runner=[*twistd_command(), "--nodaemon", "--pidfile=", f"--logfile={log_file}"],
    )
    running.append(proxy)

    def logged(text: str, path: Path = log_file) -> bool:
        deadline = time.monotonic() + 10
        while not (path.exists() and text in path.read_text(errors="replace")):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    assert logged("sillyproxy listening on")
    install(b, key, cert)
    proxy.process.send_signal(signal.SIGHUP)
    assert logged("reloaded: CN=b.example"), log_file.read_text()
    assert https_get(tls_port, client_context(b))[2] == b.der
    proxy.process.send_signal(signal.SIGUSR1)
    rotated = log_file.with_name("proxy.log.1")
    assert logged("reloaded: CN=b.example", rotated)
    # The next SIGHUP reloads again, and is logged to the fresh file.
    proxy.process.send_signal(signal.SIGHUP)
    assert logged("reloaded: CN=b.example"), log_file.read_text()
    assert "starting up" not in log_file.read_text()
    assert proxy.process.poll() is None
