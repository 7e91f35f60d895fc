"""Tests of the sillyproxy twistd options, routing table and service."""

from __future__ import annotations

import gc
import io
from unittest import SkipTest

from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._config import parse_config
from sillyproxy._lifecycle import ProxyService, tune_garbage_collector
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
    def test_service(self) -> None:
        """If options are good, then makeService builds the proxy service for them."""
        options = Options(environ={"BLUE": "http://b:1"})
        options.parseOptions(["--listen", "tcp:0:interface=127.0.0.1"])
        service = makeService(options)
        self.assertIsInstance(service, ProxyService)


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
