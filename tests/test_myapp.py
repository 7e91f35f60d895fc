"""Tests of the myapp demo backend, its /ws echo and its twistd options; in memory but one."""

from __future__ import annotations

import io
import subprocess
from typing import Any, Callable, Union

import pytest_twisted
from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Request,
    TextMessage,
)

from myapp import make_app
from myapp.tap import Options, makeService, parse_error_rate

from .processes import START_TIMEOUT, twistd_command
from .support import TableTests, rows

MiB = 1024 * 1024


def draws(*values: float) -> Callable[[], float]:
    """A stand-in for random.random that returns these values, in order, and fails if asked once more."""
    remaining = list(values)

    def draw() -> float:
        assert remaining, "more draws than expected"
        return remaining.pop(0)

    return draw


def never() -> float:
    raise AssertionError("no draw expected")


class MyAppTests(SynchronousTestCase):
    def fetch(self, v2: bool, path: str = "/", headers: dict | None = None):  # type: ignore[no-untyped-def]
        client = StubTreq(make_app("host-1", v2).resource())
        response = self.successResultOf(client.get("http://myapp" + path, headers=headers))
        body = self.successResultOf(client.content(response))
        return response, body

    def test_plain_color(self) -> None:
        """If a request has a Color header, then the plain answer is '<color> <hostname>'."""
        response, body = self.fetch(False, headers={"Color": "blue"})
        self.assertEqual(body, b"blue host-1\n")
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"), [b"text/plain; charset=utf-8"]
        )

    def test_unknown_color(self) -> None:
        """If a request has no Color header, then the colour is 'unknown'."""
        _, body = self.fetch(False)
        self.assertEqual(body, b"unknown host-1\n")

    def test_every_path(self) -> None:
        """If any path is asked for, then the same answer comes back, as the original served '/' for all."""
        response, body = self.fetch(False, path="/some/deep/path?x=1", headers={"Color": "green"})
        self.assertEqual((response.code, body), (200, b"green host-1\n"))

    def test_v2_html(self) -> None:
        """If V2 is on, then the answer is HTML naming the host and colour."""
        response, body = self.fetch(True, headers={"Color": "green"})
        self.assertEqual(body, b"<h1>host-1 (green)</h1>\n")
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"), [b"text/html; charset=utf-8"]
        )

    def test_v2_escapes_color(self) -> None:
        """If the Color header holds markup, then V2 escapes it."""
        _, body = self.fetch(True, headers={"Color": "<script>x</script>"})
        self.assertEqual(body, b"<h1>host-1 (&lt;script&gt;x&lt;/script&gt;)</h1>\n")

    def test_v2_unknown(self) -> None:
        """If V2 is on and there is no Color, then the HTML says unknown."""
        _, body = self.fetch(True)
        self.assertEqual(body, b"<h1>host-1 (unknown)</h1>\n")


class MyAppErrorRateTests(SynchronousTestCase):
    """MYAPP_ERROR_RATE: a fraction of ordinary requests answered 500, drawn by an injected random function."""

    def fetch(self, path: str = "/", headers: dict | None = None, v2: bool = False, **app: Any):  # type: ignore[no-untyped-def]
        client = StubTreq(make_app("myapp-2", v2, **app).resource())
        response = self.successResultOf(client.get("http://myapp" + path, headers=headers))
        body = self.successResultOf(client.content(response))
        return response, body

    def test_injected_error(self) -> None:
        """If the draw is below the rate, then the answer is 500, text/plain, naming the colour, host and setting."""
        response, body = self.fetch(headers={"Color": "green"}, error_rate=0.5, random=draws(0.49))
        self.assertEqual(response.code, 500)
        self.assertEqual(body, b"green myapp-2: injected error (MYAPP_ERROR_RATE=0.5)\n")
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"), [b"text/plain; charset=utf-8"]
        )

    def test_draw_at_the_rate_is_served(self) -> None:
        """If the draw equals the rate (draws are in [0, 1)), then the request is served as usual."""
        response, body = self.fetch(headers={"Color": "green"}, error_rate=0.5, random=draws(0.5))
        self.assertEqual((response.code, body), (200, b"green myapp-2\n"))

    def test_one_draw_per_request(self) -> None:
        """If several requests come, then each draws once, and only those below the rate fail."""
        client = StubTreq(make_app("myapp-2", False, error_rate=0.25, random=draws(0.1, 0.9, 0.24, 0.25)).resource())
        codes = []
        for _ in range(4):
            response = self.successResultOf(client.get("http://myapp/", headers={"Color": "blue"}))
            self.successResultOf(client.content(response))
            codes.append(response.code)
        self.assertEqual(codes, [500, 200, 500, 200])

    def test_rate_one_fails_every_request(self) -> None:
        """If the rate is 1, then even the highest draw fails, and the body says 1."""
        response, body = self.fetch(headers={"Color": "green"}, error_rate=1.0, random=draws(0.9999999))
        self.assertEqual((response.code, body), (500, b"green myapp-2: injected error (MYAPP_ERROR_RATE=1)\n"))

    def test_rate_zero_never_draws(self) -> None:
        """If the rate is 0 (the default), then no draw is made and the request is served."""
        response, body = self.fetch(headers={"Color": "blue"}, random=never)
        self.assertEqual((response.code, body), (200, b"blue myapp-2\n"))

    def test_unknown_color(self) -> None:
        """If the failing request has no Color header, then the body says unknown."""
        _, body = self.fetch(error_rate=0.5, random=draws(0.0))
        self.assertEqual(body, b"unknown myapp-2: injected error (MYAPP_ERROR_RATE=0.5)\n")

    def test_v2_error_is_plain_text(self) -> None:
        """If V2 is on, then the injected error is still the short plain-text body, not HTML."""
        response, body = self.fetch(headers={"Color": "<b>green</b>"}, v2=True, error_rate=0.5, random=draws(0.1))
        self.assertEqual(response.code, 500)
        self.assertEqual(body, b"<b>green</b> myapp-2: injected error (MYAPP_ERROR_RATE=0.5)\n")
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"), [b"text/plain; charset=utf-8"]
        )

    def test_every_path_and_method(self) -> None:
        """If any ordinary path or method is asked for, then it may fail too."""
        client = StubTreq(make_app("myapp-2", False, error_rate=1.0, random=draws(0.0, 0.0)).resource())
        for request in [client.get("http://myapp/deep/path?x=1"), client.post("http://myapp/", data=b"x")]:
            response = self.successResultOf(request)
            self.successResultOf(client.content(response))
            self.assertEqual(response.code, 500)

    def test_healthz_not_affected(self) -> None:
        """If /healthz (the image's health check) is fetched at rate 1, then it answers 200 as any page would, and nothing is drawn: a bad release is still a live one."""
        response, body = self.fetch(path="/healthz", headers={"Color": "green"}, error_rate=1.0, random=never)
        self.assertEqual(response.code, 200)
        self.assertEqual(body, b"green myapp-2\n")

    def test_plain_get_of_ws_not_affected(self) -> None:
        """If /ws is fetched without Upgrade at rate 1, then the answer is still 426 and nothing is drawn."""
        response, body = self.fetch(path="/ws", headers={"Color": "green"}, error_rate=1.0, random=never)
        self.assertEqual(response.code, 426)
        self.assertIn(b"/ws is a WebSocket echo", body)

    def test_websocket_not_affected(self) -> None:
        """If a WebSocket connects to /ws at rate 1, then the handshake succeeds and messages echo, with nothing drawn."""
        client = WebSocketClient({b"Color": b"green"}, error_rate=1.0, random=never)
        self.assertEqual(client.echo("hello"), [TextMessage(data="green: hello")])


class ErrorRateParsingTests(TableTests):
    @rows(
        ("0", 0.0),
        ("1", 1.0),
        ("0.5", 0.5),
        ("0.05", 0.05),
        (" 0.25 ", 0.25),
        ("1e-3", 0.001),
        ("1.0", 1.0),
        (".5", 0.5),
        ("", 0.0),
        ("  ", 0.0),
    )
    def test_error_rate_accepted(self, text: str, rate: float) -> None:
        """If MYAPP_ERROR_RATE is a number from 0 to 1 (or blank, meaning unset), then it is that fraction."""
        self.assertEqual(parse_error_rate(text), rate)

    @rows(
        ("abc", "not a number"),
        ("50%", "not a number"),
        ("0,5", "not a number"),
        ("nan", "not a number"),
        ("NaN", "not a number"),
        ("-0.1", "must be a fraction from 0 to 1"),
        ("1.01", "must be a fraction from 0 to 1"),
        ("2", "must be a fraction from 0 to 1"),
        ("inf", "must be a fraction from 0 to 1"),
        ("-inf", "must be a fraction from 0 to 1"),
    )
    def test_error_rate_refused(self, text: str, reason: str) -> None:
        """If MYAPP_ERROR_RATE is not a number from 0 to 1, then the reason says why."""
        caught = self.assertRaises(ValueError, parse_error_rate, text)
        self.assertEqual(str(caught), reason)


class MyAppOptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """If no --listen is given, then myapp listens on tcp:8080."""
        options = Options(environ={})
        options.parseOptions([])
        self.assertEqual(options["listen"], "tcp:8080")

    def test_bad_listen(self) -> None:
        """If --listen is not an endpoint, then the options are refused with the value named."""
        options = Options(environ={})
        error = self.assertRaises(usage.UsageError, options.parseOptions, ["--listen", "nonsense:1"])
        self.assertIn("--listen='nonsense:1'", str(error))

    def test_error_rate_default(self) -> None:
        """If MYAPP_ERROR_RATE is unset, then no request is failed on purpose."""
        options = Options(environ={})
        options.parseOptions([])
        self.assertEqual(options["error_rate"], 0.0)

    def test_error_rate_from_the_environment(self) -> None:
        """If MYAPP_ERROR_RATE is a fraction, then the options carry it."""
        options = Options(environ={"MYAPP_ERROR_RATE": "0.2"})
        options.parseOptions([])
        self.assertEqual(options["error_rate"], 0.2)

    def test_bad_error_rate_exits_2(self) -> None:
        """If MYAPP_ERROR_RATE is bad, then exit status 2 and stderr names the variable, its value and why, with no traceback."""
        stderr = io.StringIO()
        options = Options(environ={"MYAPP_ERROR_RATE": "1.5"}, stderr=stderr)
        exit = self.assertRaises(SystemExit, options.parseOptions, [])
        self.assertEqual(exit.code, 2)
        self.assertEqual(
            stderr.getvalue().splitlines(),
            ["myapp: invalid configuration, not starting:", "  MYAPP_ERROR_RATE='1.5': must be a fraction from 0 to 1"],
        )

    def fetch_from_service(self, options: Options, **service: Any) -> int:
        site = makeService(options, **service).factory  # type: ignore[attr-defined]
        client = StubTreq(site.resource)
        response = self.successResultOf(client.get("http://myapp/", headers={"Color": "green"}))
        self.successResultOf(client.content(response))
        return response.code  # type: ignore[no-any-return]

    def test_service_fails_requests_at_the_rate(self) -> None:
        """If the service is made with MYAPP_ERROR_RATE, then its app fails requests whose draw is below it."""
        options = Options(environ={"MYAPP_ERROR_RATE": "0.5"})
        options.parseOptions([])
        self.assertEqual(self.fetch_from_service(options, random=draws(0.2)), 500)
        self.assertEqual(self.fetch_from_service(options, random=draws(0.7)), 200)

    def test_service_draws_real_randomness(self) -> None:
        """If the service is made as twistd makes it (no random given), then rate 1 fails and rate 0 serves."""
        for text, code in [("1", 500), ("0", 200)]:
            options = Options(environ={"MYAPP_ERROR_RATE": text})
            options.parseOptions([])
            self.assertEqual(self.fetch_from_service(options), code)


def test_twistd_refuses_bad_error_rate(tmp_path):  # type: ignore[no-untyped-def]
    """If twistd myapp starts with MYAPP_ERROR_RATE=nan, then it exits 2 before listening, with the message and no traceback."""
    result = subprocess.run(
        twistd_command() + ["--nodaemon", "--pidfile=", "myapp", "--listen", "tcp:0:interface=127.0.0.1"],
        env={"PATH": "/usr/bin:/bin", "MYAPP_ERROR_RATE": "nan"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "myapp: invalid configuration, not starting:\n  MYAPP_ERROR_RATE='nan': not a number\n" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


class WebSocketClient:
    """
    A wsproto client connected in memory to myapp's /ws, with the handshake
    done.  What it sends reaches the server in reads of C{read_size} bytes, as
    off a network; what it receives comes whole, messages reassembled.
    """

    def __init__(self, headers: dict[bytes, bytes], read_size: int = 65536, **app: Any) -> None:
        self.read_size = read_size
        self.transport = StringTransport()
        site = Site(make_app("host-1", False, **app).resource(), reactor=Clock())
        self.server = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 12345))
        assert self.server is not None
        self.server.makeConnection(self.transport)
        self.client = WSConnection(ConnectionType.CLIENT)
        self._parts: list[Union[str, bytes, bytearray]] = []
        self.send(Request(host="myapp", target="/ws", extra_headers=list(headers.items())))
        events = self.receive()
        assert [type(e) for e in events] == [AcceptConnection], (events, self.transport.value())

    def send(self, event: Event) -> None:
        data = self.client.send(event)
        for start in range(0, len(data), self.read_size):
            self.server.dataReceived(data[start : start + self.read_size])

    def receive(self) -> list[Event]:
        """The events the server's writes so far make, messages whole."""
        written = self.transport.value()
        self.transport.clear()
        self.client.receive_data(written)
        events: list[Event] = []
        for event in self.client.events():
            if isinstance(event, Message):
                self._parts.append(event.data)
                if not event.message_finished:
                    continue
                parts, self._parts = self._parts, []
                if isinstance(event, TextMessage):
                    event = TextMessage(data="".join(str(p) for p in parts))
                else:
                    event = BytesMessage(data=b"".join(bytes(p) for p in parts))
            events.append(event)
        return events

    def echo(self, message: Union[str, bytes]) -> list[Event]:
        self.send(TextMessage(data=message) if isinstance(message, str) else BytesMessage(data=message))
        return self.receive()


class MyAppWebSocketTests(SynchronousTestCase):
    def test_text_echo(self) -> None:
        """If a text message comes on a socket that arrived with Color: green, then it is echoed as text prefixed 'green: '."""
        client = WebSocketClient({b"Color": b"green"})
        self.assertEqual(client.echo("hello"), [TextMessage(data="green: hello")])
        self.assertEqual(client.echo("again"), [TextMessage(data="green: again")])

    def test_binary_echo(self) -> None:
        """If a binary message comes, then it is echoed as binary prefixed with the colour's bytes and b': '."""
        client = WebSocketClient({b"Color": b"blue"})
        self.assertEqual(client.echo(b"\x00\xffhi"), [BytesMessage(data=b"blue: \x00\xffhi")])

    def test_unknown_color(self) -> None:
        """If the socket arrived without a Color header, then the prefix is 'unknown', as the pages say."""
        client = WebSocketClient({})
        self.assertEqual(client.echo("hello"), [TextMessage(data="unknown: hello")])
        self.assertEqual(client.echo(b"hi"), [BytesMessage(data=b"unknown: hi")])

    def test_one_mib_each_way(self) -> None:
        """If 1 MiB messages come in 64 KiB reads, then each is echoed whole, once (Twisted before 26.10 would pass on each piece)."""
        client = WebSocketClient({b"Color": b"green"})
        text = "".join(chr(ord("a") + i % 26) for i in range(MiB))
        self.assertEqual(client.echo(text), [TextMessage(data="green: " + text)])
        data = bytes(range(256)) * (MiB // 256)
        self.assertEqual(client.echo(data), [BytesMessage(data=b"green: " + data)])

    def test_message_in_frames(self) -> None:
        """If a message comes in several frames, then it is echoed once, whole."""
        client = WebSocketClient({b"Color": b"green"})
        client.send(TextMessage(data="hel", message_finished=False))
        self.assertEqual(client.receive(), [])
        client.send(TextMessage(data="lo"))
        self.assertEqual(client.receive(), [TextMessage(data="green: hello")])

    def test_message_too_big(self) -> None:
        """If a message is over the limit, then it is not echoed and the socket is closed with 1009."""
        client = WebSocketClient({b"Color": b"green"}, read_size=4, max_message=10)
        self.assertEqual(client.echo(b"0123456789"), [BytesMessage(data=b"green: 0123456789")])
        events = client.echo(b"0123456789A")
        self.assertEqual([(type(e), getattr(e, "code", None)) for e in events], [(CloseConnection, 1009)])
        self.assertTrue(client.transport.disconnecting)

    def test_backpressure(self) -> None:
        """If the connection's send buffer fills, then reading from the client pauses until it drains."""
        client = WebSocketClient({})
        channel = client.transport.producer
        channel.pauseProducing()
        self.assertEqual(client.transport.producerState, "paused")
        channel.resumeProducing()
        self.assertEqual(client.transport.producerState, "producing")

    def test_plain_get(self) -> None:
        """If /ws is fetched without Upgrade, then the answer is 426 with Upgrade: websocket, naming the colour, host and what /ws is."""
        transport = StringTransport()
        site = Site(make_app("host-1", False).resource(), reactor=Clock())
        server = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 12345))
        assert server is not None
        server.makeConnection(transport)
        server.dataReceived(b"GET /ws HTTP/1.1\r\nHost: myapp\r\nColor: green\r\n\r\n")
        head, _, body = transport.value().partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.assertEqual(lines[0], b"HTTP/1.1 426 Upgrade Required")
        self.assertIn(b"Upgrade: websocket", lines[1:])
        self.assertIn(b"green host-1: /ws is a WebSocket echo", body)

    def test_bad_handshake(self) -> None:
        """If /ws is fetched with Upgrade: websocket but no key, then the answer is Twisted's 400."""
        client = StubTreq(make_app("host-1", False).resource())
        response = self.successResultOf(
            client.get("http://myapp/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
        )
        self.successResultOf(client.content(response))
        self.assertEqual(response.code, 400)


def _websockets_exchange(port: int) -> list[Union[str, bytes]]:
    from websockets.sync.client import connect

    # max_size: the websockets default (1 MiB) refuses the echo of a 1 MiB message.
    with connect(
        f"ws://127.0.0.1:{port}/ws",
        additional_headers={"Color": "green"},
        proxy=None,
        max_size=4 * MiB,
        open_timeout=10,
        close_timeout=5,
    ) as socket:
        answers = []
        for message in ["hello", b"\x00hi", b"x" * MiB]:
            socket.send(message)
            answers.append(socket.recv(timeout=10))
    return answers


@pytest_twisted.inlineCallbacks
def test_websocket_over_tcp():  # type: ignore[no-untyped-def]
    """If the websockets client talks to /ws over TCP, then text, binary and 1 MiB messages come back prefixed."""
    from twisted.internet import reactor

    port = reactor.listenTCP(0, Site(make_app("host-1", False).resource()), interface="127.0.0.1")
    try:
        answers = yield deferToThread(_websockets_exchange, port.getHost().port)
    finally:
        yield port.stopListening()
    assert answers[:2] == ["green: hello", b"green: \x00hi"]
    assert answers[2] == b"green: " + b"x" * MiB
