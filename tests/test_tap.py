"""Tests of the sillyproxy twistd options, routing table and service."""

from __future__ import annotations

import gc
import io
from unittest import SkipTest

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from sillyproxy import __version__
from sillyproxy._admin import AdminSite
from sillyproxy._config import parse_config
from sillyproxy._lifecycle import tune_garbage_collector
from sillyproxy._site import ProxySite
from sillyproxy.tap import Options, makeService, routing_table


class OptionsTests(SynchronousTestCase):
    def test_good_configuration(self) -> None:
        """If the settings are good, then the options carry the parsed configuration."""
        options = Options(environ={"BLUE": "http://b:1", "RED": "http://r:2"})
        options.parseOptions(["--listen", "tcp:0:interface=127.0.0.1", "red"])
        config = options["config"]
        self.assertEqual(config.listen, "tcp:0:interface=127.0.0.1")
        self.assertEqual([b.color for b in config.backends], ["blue", "red"])

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


class MakeServiceTests(SynchronousTestCase):
    def start(self, environ: dict[str, str]) -> MemoryReactorClock:
        options = Options(environ=environ)
        options.parseOptions(["--listen", "tcp:8080"])
        reactor = MemoryReactorClock()
        service = makeService(options, reactor)
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        if hasattr(gc, "unfreeze"):
            self.addCleanup(gc.unfreeze)
        return reactor

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
