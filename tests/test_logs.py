"""Tests of the access log formats and twistd's log observer."""

from __future__ import annotations

import io
import json

from twisted.internet.task import Clock
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._accesslog import AccessLog, AccessRecord, format_access_json, format_access_line
from sillyproxy.logs import JSONLineObserver, observer

RECORD = AccessRecord(
    time=1_800_000_000.25,
    client="127.0.0.1",
    method=b"GET",
    target=b"/a?b=1",
    color="blue",
    status=200,
    body_bytes=123,
    duration=0.0042,
    upstream="10.0.0.7:8080",
    host="shop.example",
    user_agent="curl/8.5.0",
    request_id="abc-123",
)


class AccessLogTests(SynchronousTestCase):
    def test_text_line(self) -> None:
        """If a request is logged as text, then one line names client, method, target, colour, status, bytes, duration."""
        self.assertEqual(format_access_line(RECORD), "127.0.0.1 GET /a?b=1 blue 200 123 4.2ms")
        self.assertEqual(
            format_access_line(RECORD._replace(outcome="client closed", method=b"G\xffT")),
            "127.0.0.1 G\\xffT /a?b=1 blue 200 123 4.2ms (client closed)",
        )

    def test_json_line(self) -> None:
        """If a request is logged as JSON, then one object has every field, time in RFC 3339 UTC."""
        self.assertEqual(
            json.loads(format_access_json(RECORD)),
            {
                "time": "2027-01-15T08:00:00.250Z",
                "client": "127.0.0.1",
                "method": "GET",
                "path": "/a?b=1",
                "status": 200,
                "color": "blue",
                "bytes": 123,
                "duration_ms": 4.2,
                "reason": "weighted",
                "upstream": "10.0.0.7:8080",
                "host": "shop.example",
                "user_agent": "curl/8.5.0",
                "request_id": "abc-123",
            },
        )
        self.assertEqual(json.loads(format_access_json(RECORD._replace(outcome="failover")))["reason"], "failover")

    def test_batched_write(self) -> None:
        """If several requests end in one reactor turn, then their lines go out in one write."""
        writes: list[bytes] = []
        clock = Clock()
        log = AccessLog(clock, "json", writes.append)
        log(RECORD)
        log(RECORD)
        self.assertEqual(writes, [])
        clock.advance(0)
        self.assertEqual(len(writes), 1)
        self.assertEqual([json.loads(line)["status"] for line in writes[0].splitlines()], [200, 200])

    def test_writes_never_split_a_line_and_fit_a_pipe(self) -> None:
        """If a turn's lines exceed what a pipe writes at once (4 KiB), then they go out in several writes of whole lines, none over 4 KiB, so workers sharing standard output never interleave mid-line."""
        writes: list[bytes] = []
        clock = Clock()
        log = AccessLog(clock, "text", writes.append)
        for i in range(100):
            log(RECORD._replace(target=b"/%d" % i + b"x" * (i % 50)))
        long = RECORD._replace(target=b"/" + b"y" * 6000)
        log(long)
        log(RECORD)
        clock.advance(0)
        self.assertGreater(len(writes), 2)
        for data in writes:
            self.assertTrue(data.endswith(b"\n"))
            self.assertTrue(len(data) <= 4096 or data.count(b"\n") == 1, len(data))
        lines = b"".join(writes).splitlines()
        self.assertEqual(len(lines), 102)
        self.assertIn(b"y" * 6000, lines[100])

    def test_off(self) -> None:
        """If the access log is off, then nothing is written."""
        writes: list[bytes] = []
        clock = Clock()
        AccessLog(clock, "off", writes.append)(RECORD)
        clock.advance(0)
        self.assertEqual(writes, [])

    def test_broken_output_disables_log(self) -> None:
        """If writing the log fails (a closed pipe), then it stops trying instead of failing requests."""
        calls: list[bytes] = []

        def broken(data: bytes) -> None:
            calls.append(data)
            raise BrokenPipeError()

        clock = Clock()
        log = AccessLog(clock, "text", broken)
        log(RECORD)
        clock.advance(0)
        log(RECORD)
        clock.advance(0)
        self.assertEqual(len(calls), 1)


class ObserverTests(SynchronousTestCase):
    def test_json_events(self) -> None:
        """If SILLYPROXY_ACCESS_LOG=json, then the proxy's own events are JSON lines too."""
        out = io.StringIO()
        chosen = observer({"SILLYPROXY_ACCESS_LOG": "json"}, out)
        self.assertIsInstance(chosen, JSONLineObserver)
        chosen(
            {
                "log_time": 1_800_000_000.0,
                "log_level": LogLevel.warn,
                "log_namespace": "sillyproxy.health",
                "log_format": "{color} is out",
                "color": "green",
            }
        )
        self.assertEqual(
            json.loads(out.getvalue()),
            {
                "time": "2027-01-15T08:00:00.000Z",
                "level": "warn",
                "namespace": "sillyproxy.health",
                "message": "green is out",
            },
        )

    def test_json_failure(self) -> None:
        """If an event carries a failure, then the JSON line carries its message."""
        out = io.StringIO()
        observer({"SILLYPROXY_ACCESS_LOG": "json"}, out)(
            {"log_format": "boom", "log_failure": Failure(ValueError("bad")), "log_level": LogLevel.error}
        )
        self.assertEqual(json.loads(out.getvalue())["error"], "bad")

    def test_text_by_default(self) -> None:
        """If JSON is not chosen, then events are twistd's usual text."""
        out = io.StringIO()
        observer({}, out)({"log_format": "hello", "log_time": 1_800_000_000.0, "log_namespace": "x"})
        self.assertIn("hello", out.getvalue())
        self.assertFalse(out.getvalue().startswith("{"))
