"""In-memory tests of the myapp demo backend and its twistd options."""

from __future__ import annotations

from treq.testing import StubTreq
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from myapp import make_app
from myapp.tap import Options


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
