"""Tests of the sillyproxy twistd options, routing table and service."""

from __future__ import annotations

import gc
import io
import json
import os
import signal
from collections.abc import Callable
from unittest import SkipTest

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import getChildForRequest
from twisted.web.test.requesthelper import DummyRequest

from sillyproxy import __version__
from sillyproxy._admin import AdminSite
from sillyproxy._config import parse_config
from sillyproxy._lifecycle import tune_garbage_collector
from sillyproxy._site import ProxySite
from sillyproxy._tls import SwappableServerTLS
from sillyproxy.tap import Options, makeService, routing_table

from .certificates import install, make_credentials, served_common_name, ssl_description, temporary_directory


class OptionsTests(SynchronousTestCase):
    def test_good_configuration(self) -> None:
        """If the settings are good, then the options carry the parsed configuration."""
        options = Options(environ={"BLUE": "http://b:1", "RED": "http://r:2"})
        options.parseOptions(["--listen", "tcp:0:interface=127.0.0.1", "red"])
        config = options["config"]
        self.assertEqual(config.listen, ("tcp:0:interface=127.0.0.1",))
        self.assertEqual([b.color for b in config.backends], ["blue", "red"])

    def test_listen_may_be_repeated(self) -> None:
        """If --listen (or -l) is given several times, then every endpoint is used, in order, and SILLYPROXY_LISTEN is not."""
        options = Options(environ={"BLUE": "http://b:1", "SILLYPROXY_LISTEN": "tcp:9"})
        options.parseOptions(["--listen", "tcp:1", "-l", "tcp:2", "--listen=unix:/tmp/p.sock"])
        self.assertEqual(options["config"].listen, ("tcp:1", "tcp:2", "unix:/tmp/p.sock"))

    def test_listen_from_the_variable(self) -> None:
        """If there is no --listen, then SILLYPROXY_LISTEN's space-separated endpoints are used."""
        options = Options(environ={"BLUE": "http://b:1", "SILLYPROXY_LISTEN": "tcp:1  tcp:2"})
        options.parseOptions([])
        self.assertEqual(options["config"].listen, ("tcp:1", "tcp:2"))

    def test_one_bad_listener_of_several(self) -> None:
        """If one of several listen endpoints is bad, then exit status 2 and the message names the variable and that endpoint."""
        stderr = io.StringIO()
        options = Options(environ={"BLUE": "http://b", "SILLYPROXY_LISTEN": "tcp:8080 tcp:x"}, stderr=stderr)
        exit = self.assertRaises(SystemExit, options.parseOptions, [])
        self.assertEqual(exit.code, 2)
        lines = stderr.getvalue().splitlines()
        self.assertEqual(len(lines), 2)
        self.assertTrue(lines[1].startswith("  SILLYPROXY_LISTEN='tcp:x': not a server endpoint ("), lines)

    def test_tls_files_are_checked(self) -> None:
        """If an ssl: listener names a key file that is missing, then the configuration is refused."""
        directory = temporary_directory(self)
        a = make_credentials(directory, "a.example")
        description = ssl_description(8443, directory / "missing.key", a.cert_path)
        stderr = io.StringIO()
        options = Options(environ={"BLUE": "http://b"}, stderr=stderr)
        exit = self.assertRaises(SystemExit, options.parseOptions, ["--listen", "tcp:8080", "--listen", description])
        self.assertEqual(exit.code, 2)
        self.assertIn(f"  --listen={description!r}: not a server endpoint (", stderr.getvalue())
        self.assertIn("No such file or directory", stderr.getvalue())

    def test_bad_configuration_exits_with_every_problem(self) -> None:
        """If settings are bad, then exit status 2 and stderr lists every problem, with no traceback."""
        stderr = io.StringIO()
        options = Options(
            environ={"GREEN_WEIGHT": "abc", "GREEN": "http://g", "BLUE": "nope"}, stderr=stderr
        )
        exit = self.assertRaises(SystemExit, options.parseOptions, ["--listen", "tcp:x"])
        self.assertEqual(exit.code, 2)
        lines = stderr.getvalue().splitlines()
        self.assertEqual(lines[0], "sillyproxy: invalid configuration, not starting:")
        self.assertEqual(lines[1][:24], "  --listen='tcp:x': not ")
        self.assertEqual(
            lines[2:],
            [
                "  BLUE='nope': scheme must be http or https",
                "  GREEN_WEIGHT='abc': not an integer",
            ],
        )
        self.assertNotIn("Traceback", stderr.getvalue())


    def test_bad_ramp_exits_2(self) -> None:
        """If a ramp is bad (here: with no start), then exit status 2 names the variable."""
        stderr = io.StringIO()
        options = Options(
            environ={"BLUE": "http://b", "GREEN": "http://g", "GREEN_RAMP": "5,50"}, stderr=stderr
        )
        exit = self.assertRaises(SystemExit, options.parseOptions, ["--listen", "tcp:8080"])
        self.assertEqual(exit.code, 2)
        self.assertIn("  GREEN_RAMP_START: required with GREEN_RAMP", stderr.getvalue().splitlines())


class RoutingTableTests(SynchronousTestCase):
    def test_shares(self) -> None:
        """If blue and green weigh 4 and 1, then the table shows 80% and 20%."""
        config = parse_config(
            {"BLUE": "http://b", "GREEN": "http://g/", "BLUE_WEIGHT": "4", "GREEN_WEIGHT": "1"}
        )
        self.assertEqual(
            routing_table(config),
            [
                "blue     http://b  weight 4  share 80.0%",
                "green    http://g/  weight 1  share 20.0%",
            ],
        )

    def test_unserved_and_empty(self) -> None:
        """If no colour can take traffic, then the table says which are unset and that all get 502."""
        config = parse_config({"BLUE": "http://b", "BLUE_WEIGHT": "0"})
        self.assertEqual(
            routing_table(config),
            [
                "blue     http://b  weight 0  share 0.0%",
                "green    not served: GREEN is not set",
                "no colour has a weight above 0: every request gets 502",
            ],
        )


    def test_ramp_rollback_and_mirror(self) -> None:
        """If green ramps, is armed for rollback and red is mirrored, then the table says so."""
        config = parse_config(
            {
                "BLUE": "http://b",
                "GREEN": "http://g",
                "RED": "http://r",
                "RED_WEIGHT": "0",
                "SILLYPROXY_COLORS": "red",
                "GREEN_RAMP": "1,5,50.5",
                "GREEN_RAMP_START": "2026-12-01T11:00:00+01:00",
                "GREEN_RAMP_STEP": "90s",
                "GREEN_ROLLBACK_ERROR_RATE": "0.05",
                "RED_MIRROR": "12.5",
            }
        )
        self.assertEqual(
            routing_table(config),
            [
                "blue     http://b  weight 1  share 100.0% of what green's ramp leaves",
                "green    http://g  ramp 1%, 5%, 50.5% from 2026-12-01T10:00:00.000Z, a step every 90s",
                "red      http://r  weight 0  share 0.0% of what green's ramp leaves",
                "green is rolled back if over 30s (at least 20 requests) more than 0.05 of its requests fail",
                "red gets a copy of 12.5% of the other colours' requests (answers thrown away)",
            ],
        )


class ThreadedMemoryReactor(MemoryReactorClock):
    """A memory reactor whose callFromThread runs the call at once."""

    def callFromThread(self, f: Callable[..., object], *args: object, **kwargs: object) -> None:
        f(*args, **kwargs)


class MakeServiceTests(SynchronousTestCase):
    def start(self, environ: dict[str, str], listen: tuple[str, ...] = ("tcp:8080",)) -> MemoryReactorClock:
        options = Options(environ=environ)
        options.parseOptions([argument for description in listen for argument in ("--listen", description)])
        reactor = ThreadedMemoryReactor()
        service = makeService(options, reactor)
        if hasattr(signal, "SIGHUP"):
            self.addCleanup(signal.signal, signal.SIGHUP, signal.getsignal(signal.SIGHUP))
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        if hasattr(gc, "unfreeze"):
            self.addCleanup(gc.unfreeze)
        return reactor

    def status(self, reactor: MemoryReactorClock) -> dict[str, object]:
        [admin] = [factory for _, factory, _, _ in reactor.tcpServers if isinstance(factory, AdminSite)]
        request = DummyRequest([b"status"])
        body = getChildForRequest(admin.resource, request).render(request)
        return json.loads(body)  # type: ignore[no-any-return]

    def test_service_listens_on_every_endpoint(self) -> None:
        """If several listen endpoints are given, plain and TLS, then the one proxy site listens on each, TLS through a swappable certificate."""
        directory = temporary_directory(self)
        a = make_credentials(directory, "a.example")
        tls = ssl_description(8443, a.key_path, a.cert_path)
        reactor = self.start(
            {"BLUE": "http://10.0.0.1:1", "SILLYPROXY_ADMIN_LISTEN": "tcp:9000", "SILLYPROXY_FAST_TRANSPORT": "0"},
            listen=("tcp:8080", "tcp:8081", tls),
        )
        listening = {port: factory for port, factory, _, _ in reactor.tcpServers}
        self.assertEqual(set(listening), {8080, 8081, 9000})
        [(port, factory, creator, _, interface)] = reactor.sslServers
        self.assertEqual((port, interface), (8443, "127.0.0.1"))
        self.assertIsInstance(listening[8080], ProxySite)
        self.assertIs(listening[8081], listening[8080])
        # The same site, behind a stand-in that keeps Twisted from setting
        # ALPN on the shared TLS context per connection.
        self.assertIs(factory._factory, listening[8080])
        self.assertIsInstance(creator, SwappableServerTLS)
        self.assertEqual(self.status(reactor)["listen"], f"tcp:8080 tcp:8081 {tls}")

    def test_sighup_reloads_the_certificates(self) -> None:
        """If the certificate files change and SIGHUP arrives, then the TLS listener serves the new certificate."""
        if not hasattr(signal, "SIGHUP"):
            raise SkipTest("no SIGHUP on this platform")
        directory = temporary_directory(self)
        a, b = make_credentials(directory, "a.example"), make_credentials(directory, "b.example")
        key, cert = directory / "live.key", directory / "live.pem"
        install(a, key, cert)
        reactor = self.start(
            {"BLUE": "http://10.0.0.1:1", "SILLYPROXY_ADMIN_LISTEN": "none"},
            listen=(ssl_description(8443, key, cert),),
        )
        [(_, _, creator, _, _)] = reactor.sslServers
        self.assertEqual(served_common_name(creator), "a.example")
        install(b, key, cert)
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertEqual(served_common_name(creator), "b.example")

    def test_service_listens_as_configured(self) -> None:
        """If the options are good, then the service listens with the proxy on --listen and the admin listener on its own port."""
        reactor = self.start(
            {"BLUE": "http://10.0.0.1:1", "SILLYPROXY_ADMIN_LISTEN": "tcp:9000", "SILLYPROXY_FAST_TRANSPORT": "0"}
        )
        listening = {port: factory for port, factory, _, _ in reactor.tcpServers}
        self.assertEqual(set(listening), {8080, 9000})
        self.assertIsInstance(listening[8080], ProxySite)
        self.assertIsInstance(listening[9000], AdminSite)

    def test_admin_listener_off(self) -> None:
        """If SILLYPROXY_ADMIN_LISTEN is none, then only the proxy listens."""
        reactor = self.start(
            {"BLUE": "http://10.0.0.1:1", "SILLYPROXY_ADMIN_LISTEN": "none", "SILLYPROXY_FAST_TRANSPORT": "0"}
        )
        self.assertEqual([port for port, *_ in reactor.tcpServers], [8080])

    def test_health_checks_probe_on_the_given_reactor(self) -> None:
        """If a colour has C_HEALTH, then its addresses are probed at start, through the reactor the service was built with."""
        reactor = self.start(
            {
                "BLUE": "http://10.0.0.1:1",
                "BLUE_HEALTH": "/healthz",
                "SILLYPROXY_ADMIN_LISTEN": "none",
                "SILLYPROXY_FAST_TRANSPORT": "0",
            }
        )
        self.assertEqual([(host, port) for host, port, *_ in reactor.tcpClients], [("10.0.0.1", 1)])


class VersionAndCheckTests(SynchronousTestCase):
    def test_version(self) -> None:
        """If --version is given, then sillyproxy's own version is printed and the exit status is 0."""
        stdout = io.StringIO()
        exit = self.assertRaises(SystemExit, Options(environ={}, stdout=stdout).parseOptions, ["--version"])
        self.assertEqual(exit.code, 0)
        self.assertEqual(stdout.getvalue(), f"sillyproxy {__version__}\n")

    def test_check_good(self) -> None:
        """If --check is given with a good configuration, then the routing table is printed and the exit status is 0."""
        stdout = io.StringIO()
        options = Options(environ={"BLUE": "http://b", "BLUE_WEIGHT": "3"}, stdout=stdout)
        exit = self.assertRaises(SystemExit, options.parseOptions, ["--check"])
        self.assertEqual(exit.code, 0)
        self.assertEqual(
            stdout.getvalue().splitlines(),
            [
                "sillyproxy: configuration OK; listening on tcp:8080",
                "  blue     http://b  weight 3  share 100.0%",
                "  green    not served: GREEN is not set",
            ],
        )

    def test_check_names_every_listener(self) -> None:
        """If --check is given with several listen endpoints, then the first line names them all."""
        stdout = io.StringIO()
        options = Options(environ={"BLUE": "http://b", "SILLYPROXY_LISTEN": "tcp:8080 unix:/tmp/p.sock"}, stdout=stdout)
        self.assertRaises(SystemExit, options.parseOptions, ["--check"])
        self.assertEqual(
            stdout.getvalue().splitlines()[0], "sillyproxy: configuration OK; listening on tcp:8080 unix:/tmp/p.sock"
        )

    def test_check_bad(self) -> None:
        """If --check is given with a bad configuration, then the problems are printed and the exit status is 2."""
        stderr = io.StringIO()
        options = Options(environ={"BLUE": "ftp://b"}, stderr=stderr, stdout=io.StringIO())
        exit = self.assertRaises(SystemExit, options.parseOptions, ["--check"])
        self.assertEqual(exit.code, 2)
        self.assertIn("BLUE='ftp://b': scheme must be http or https", stderr.getvalue())


class GarbageCollectorTests(SynchronousTestCase):
    def test_start_up_objects_are_frozen(self) -> None:
        """If the proxy has started, then what start-up built is out of the cyclic collector's sight."""
        if not hasattr(gc, "freeze"):
            raise SkipTest("PyPy's collector is tuned with PYPY_GC_* instead")
        threshold = gc.get_threshold()
        try:
            tune_garbage_collector()
            self.assertGreater(gc.get_freeze_count(), 1000)
            self.assertEqual(gc.get_threshold(), threshold)
        finally:
            gc.unfreeze()
