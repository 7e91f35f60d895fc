"""In-memory tests of the forwarding resource, with in-memory backends (trial can run these too)."""

from __future__ import annotations

import gzip
import os

from twisted.internet import error
from twisted.internet.defer import succeed
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseFailed, ResponseNeverReceived
from twisted.web.iweb import UNKNOWN_LENGTH, IResponse
from zope.interface import implementer

from myapp import make_app
from sillyproxy._compat import ParseError

from .support import (
    CaptureResource,
    HalfResponse,
    HeldResource,
    InMemoryProxy,
    ScriptedAgent,
    TableTests,
    backend,
    failing_agent,
    rows,
)

BLUE = backend("blue", "http://blue.internal:8080")
GREEN = backend("green", "http://green.internal:8080/prefix/")


class ForwardingTests(SynchronousTestCase):
    def get(self, proxy: InMemoryProxy, url: str = "http://proxy/", **kwargs):  # type: ignore[no-untyped-def]
        return self.request(proxy, "GET", url, **kwargs)

    def request(self, proxy, method, url, **kwargs):  # type: ignore[no-untyped-def]
        d = proxy.client.request(method, url, **kwargs)
        proxy.flush()
        response = self.successResultOf(d)
        body = proxy.client.content(response)
        proxy.flush()
        return response, self.successResultOf(body)

    def test_color_reaches_myapp(self) -> None:
        """If a request is forwarded, then the backend sees Color set to the chosen colour."""
        proxy = InMemoryProxy([(BLUE, make_app("v1-host", v2=False).resource())])
        response, body = self.get(proxy, headers={"Color": "red"})
        self.assertEqual(response.code, 200)
        self.assertEqual(body, b"blue v1-host\n")

    def test_v2_renders_html_with_color(self) -> None:
        """If the backend is myapp with V2, then the proxy relays its HTML naming the colour."""
        proxy = InMemoryProxy(
            [(backend("green", "http://g:1"), make_app("v2-host", v2=True).resource())]
        )
        response, body = self.get(proxy)
        self.assertEqual(body, b"<h1>v2-host (green)</h1>\n")
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"), [b"text/html; charset=utf-8"]
        )

    def test_path_joined_exactly(self) -> None:
        """If the backend has a base path, then the client's path and query are joined on it untouched."""
        capture = CaptureResource()
        proxy = InMemoryProxy([(GREEN, capture)])
        self.get(proxy, "http://proxy/a%2Fb;x?q=1&r=%7E")
        self.assertEqual(capture.seen[0].uri, b"/prefix/a%2Fb;x?q=1&r=%7E")

    def test_hop_by_hop_stripped_towards_backend(self) -> None:
        """If a client sends hop-by-hop headers, then none reach the backend, and Host is kept."""
        capture = CaptureResource()
        proxy = InMemoryProxy([(BLUE, capture)])
        self.get(
            proxy,
            "http://shop.example/",
            headers={
                "Connection": "X-Private",
                "X-Private": "secret",
                "Keep-Alive": "timeout=5",
                "TE": "trailers",
                "Upgrade": "websocket",
                "Proxy-Connection": "keep-alive",
                "Proxy-Authorization": "Basic eA==",
                "Trailer": "X-Sum",
                "X-Kept": "yes",
            },
        )
        seen = capture.seen[0].headers
        for name in (
            b"x-private",
            b"keep-alive",
            b"te",
            b"upgrade",
            b"proxy-connection",
            b"proxy-authorization",
            b"trailer",
        ):
            self.assertFalse(seen.hasHeader(name), name)
        self.assertEqual(seen.getRawHeaders(b"x-kept"), [b"yes"])
        self.assertEqual(seen.getRawHeaders(b"host"), [b"shop.example"])
        self.assertEqual(seen.getRawHeaders(b"x-forwarded-host"), [b"shop.example"])
        self.assertEqual(seen.getRawHeaders(b"x-forwarded-proto"), [b"http"])

    def test_response_passes_through_unchanged(self) -> None:
        """
        If the backend answers with a status, repeated Set-Cookie and a gzip
        body, then the client gets each exactly, with no decoding.
        """
        compressed = gzip.compress(b"hello " * 100)
        capture = CaptureResource(
            status=418,
            headers=[
                (b"Set-Cookie", [b"a=1", b"b=2"]),
                (b"Content-Encoding", [b"gzip"]),
                (b"Content-Type", [b"text/plain"]),
            ],
            body=compressed,
        )
        proxy = InMemoryProxy([(BLUE, capture)])
        # Raw bytes: treq, like browsers, would decode the gzip body for us.
        written, _ = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n")
        head, _, body = written.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 418 "), head)
        self.assertIn(b"\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n", head + b"\r\n")
        self.assertIn(b"\r\nContent-Encoding: gzip\r\n", head + b"\r\n")
        self.assertIn(b"\r\nContent-Length: %d\r\n" % len(compressed), head + b"\r\n")
        self.assertEqual(body, compressed)

    def test_redirect_not_followed(self) -> None:
        """If the backend redirects, then the client gets the redirect and the proxy follows nothing."""
        capture = CaptureResource(status=302, headers=[(b"Location", [b"/elsewhere"])], body=b"")
        proxy = InMemoryProxy([(BLUE, capture)])
        response, _ = self.get(proxy, allow_redirects=False)
        self.assertEqual(response.code, 302)
        self.assertEqual(response.headers.getRawHeaders(b"location"), [b"/elsewhere"])
        self.assertEqual(len(capture.seen), 1)

    def test_no_invented_headers(self) -> None:
        """If the backend sends no Content-Type or Server, then the proxy adds neither."""

        class Bare(CaptureResource):
            def render(self, request):  # type: ignore[no-untyped-def]
                request.defaultContentType = None
                request.responseHeaders.removeHeader(b"server")
                return b"x"

        proxy = InMemoryProxy([(BLUE, Bare())])
        response, body = self.get(proxy)
        self.assertEqual(body, b"x")
        self.assertFalse(response.headers.hasHeader(b"content-type"))
        self.assertFalse(response.headers.hasHeader(b"server"))

    def test_head_keeps_content_length(self) -> None:
        """If a HEAD response has a Content-Length, then the client gets it and no body."""
        capture = CaptureResource(body=b"twelve bytes")
        proxy = InMemoryProxy([(BLUE, capture)])
        response, body = self.request(proxy, "HEAD", "http://proxy/")
        self.assertEqual(response.headers.getRawHeaders(b"content-length"), [b"12"])
        self.assertEqual(body, b"")

    def test_upload_forwarded(self) -> None:
        """If a client uploads a body (small, empty, or spooled to disk), then the backend gets it intact."""
        for data in (b"small body", b"", os.urandom(300_000)):
            capture = CaptureResource()
            proxy = InMemoryProxy([(BLUE, capture)])
            response, _ = self.request(proxy, "POST", "http://proxy/up", data=data)
            self.assertEqual(response.code, 200)
            self.assertEqual(capture.seen[0].body, data)
            self.assertEqual(
                capture.seen[0].headers.getRawHeaders(b"content-length"), [b"%d" % len(data)]
            )

    def test_form_upload_not_parsed(self) -> None:
        """If a client posts a form, then it reaches the backend byte for byte."""
        capture = CaptureResource()
        proxy = InMemoryProxy([(BLUE, capture)])
        data = b"a=1&b=%20&a=2"
        self.request(
            proxy,
            "POST",
            "http://proxy/form",
            data=data,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        self.assertEqual(capture.seen[0].body, data)

    def test_each_draw_picks_the_colour_whose_slice_holds_it(self) -> None:
        """
        If blue and green weigh 4 and 1, then each request draws below 5 and
        goes blue on a draw of 0 to 3 and green on 4, which the backend sees
        in Color.
        """
        blue, green = CaptureResource(), CaptureResource()
        draws = [4, 0, 3, 4, 1]
        asked: list[int] = []

        def randbelow(total: int) -> int:
            asked.append(total)
            return draws[len(asked) - 1]

        proxy = InMemoryProxy(
            [
                (backend("blue", "http://b:1", 4), blue),
                (backend("green", "http://g:1", 1), green),
            ],
            randbelow=randbelow,
        )
        for _ in draws:
            self.get(proxy)
        self.assertEqual(asked, [5] * len(draws))
        self.assertEqual(
            [record.color for record in proxy.access], ["green", "blue", "blue", "green", "blue"]
        )
        self.assertEqual(
            [c.headers.getRawHeaders(b"color") for c in blue.seen], [[b"blue"]] * 3
        )
        self.assertEqual(
            [c.headers.getRawHeaders(b"color") for c in green.seen], [[b"green"]] * 2
        )

    def test_access_log_record(self) -> None:
        """
        If a request completes, then one access record names when it began,
        the client, method, target, colour, status, bytes sent and how long
        the backend took, by the proxy's clock.
        """
        held = HeldResource()
        proxy = InMemoryProxy([(BLUE, held)])
        proxy.clock.advance(100)
        d = proxy.client.get("http://proxy/x?y=1")
        proxy.flush()
        self.assertEqual(proxy.access, [])
        proxy.clock.advance(2.5)
        held.answer(b"12345")
        proxy.flush()
        self.assertEqual(self.successResultOf(d).code, 200)
        [record] = proxy.access
        self.assertEqual(
            (record.time, record.client, record.method, record.target, record.color),
            (100.0, "127.0.0.9", b"GET", b"/x?y=1", "blue"),
        )
        self.assertEqual((record.status, record.body_bytes, record.duration), (200, 5, 2.5))
        self.assertEqual(record.outcome, "")


class UnavailableTests(SynchronousTestCase):
    def get(self, proxy):  # type: ignore[no-untyped-def]
        d = proxy.client.get("http://proxy/")
        proxy.flush()
        response = self.successResultOf(d)
        body = proxy.client.content(response)
        proxy.flush()
        return response, self.successResultOf(body)

    def test_no_weight_no_backends(self) -> None:
        """If no colour has a weight above 0, then 502 'no backends available' and nothing is contacted."""
        agent = ScriptedAgent()
        proxy = InMemoryProxy(agent=agent, extra_backends=[backend("blue", "http://b", 0)])
        response, body = self.get(proxy)
        self.assertEqual((response.code, body), (502, b"no backends available\n"))
        self.assertEqual(agent.calls, [])

    def test_nothing_configured(self) -> None:
        """If no colour is configured at all, then 502 'no backends available'."""
        agent = ScriptedAgent()
        proxy = InMemoryProxy(agent=agent)
        response, body = self.get(proxy)
        self.assertEqual((response.code, body), (502, b"no backends available\n"))
        self.assertEqual(agent.calls, [])



class BackendFailureTests(TableTests):
    @rows(
        (error.ConnectionRefusedError(), 502, b"backend refused the connection\n"),
        (error.DNSLookupError("nope"), 502, b"backend host name did not resolve\n"),
        (error.TimeoutError(), 504, b"backend did not accept the connection in time\n"),
        (error.ConnectError("x"), 502, b"backend unreachable\n"),
        (
            ResponseNeverReceived([Failure(error.ConnectionLost())]),
            502,
            b"backend closed the connection before responding\n",
        ),
        (
            ResponseFailed([Failure(ParseError("wrong number of parts", b"HTTP/1.1"))]),
            502,
            b"backend sent a malformed response\n",
        ),
        (ValueError("surprise"), 502, b"bad gateway\n"),
    )
    def test_backend_failure(self, exception: Exception, status: int, message: bytes) -> None:
        """If the backend cannot be reached or answers garbage, then a 502/504 with a one-line reason, which the access log gives too."""
        proxy = InMemoryProxy(agent=failing_agent(exception), extra_backends=[BLUE])
        d = proxy.client.get("http://proxy/")
        proxy.flush()
        response = self.successResultOf(d)
        body = proxy.client.content(response)
        proxy.flush()
        self.assertEqual((response.code, self.successResultOf(body)), (status, message))
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"), [b"text/plain; charset=utf-8"]
        )
        self.assertEqual(proxy.access[0].outcome, message.decode().strip())
        self.flushLoggedErrors()


class RawConnectionTests(SynchronousTestCase):
    def test_absolute_form_goes_to_backend(self) -> None:
        """If the target is absolute-form, then the chosen backend gets its path and the client's Host."""
        capture = CaptureResource()
        proxy = InMemoryProxy([(BLUE, capture)])
        written, _ = proxy.raw(
            b"GET http://elsewhere.example/x?y=1 HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n"
        )
        self.assertTrue(written.startswith(b"HTTP/1.1 200 "), written)
        self.assertEqual(capture.seen[0].uri, b"/x?y=1")
        self.assertEqual(capture.seen[0].headers.getRawHeaders(b"host"), [b"elsewhere.example"])

    def test_connect_refused(self) -> None:
        """If a client sends CONNECT, then 405 and no backend is contacted."""
        agent = ScriptedAgent()
        proxy = InMemoryProxy(agent=agent, extra_backends=[BLUE])
        written, _ = proxy.raw(b"CONNECT elsewhere:443 HTTP/1.1\r\nHost: elsewhere:443\r\n\r\n")
        self.assertTrue(written.startswith(b"HTTP/1.1 405 "), written)
        self.assertIn(b"Allow: ", written)
        self.assertEqual(agent.calls, [])

    def test_x_forwarded_for_appended(self) -> None:
        """If the client sends X-Forwarded-For, then its own address is appended."""
        capture = CaptureResource()
        proxy = InMemoryProxy([(BLUE, capture)])
        proxy.raw(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n"
        )
        self.assertEqual(
            capture.seen[0].headers.getRawHeaders(b"x-forwarded-for"),
            [b"203.0.113.7, 127.0.0.9"],
        )

    def test_client_disconnect_cancels_backend_request(self) -> None:
        """If the client leaves before the backend answers, then the backend request is cancelled."""
        agent = ScriptedAgent()
        proxy = InMemoryProxy(agent=agent, extra_backends=[BLUE])
        _, transport = proxy.raw(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        [call] = agent.calls
        self.assertEqual(call.cancelled, [])
        transport.protocol.connectionLost(Failure(error.ConnectionDone()))
        self.assertEqual(call.cancelled, [True])
        self.assertEqual(proxy.access[0].outcome, "client closed")

    def test_failure_mid_body_aborts_client(self) -> None:
        """If the backend fails mid-body, then the client connection is aborted, not finished."""
        response = HalfResponse()
        proxy = InMemoryProxy(
            agent=ScriptedAgent(lambda: succeed(response)), extra_backends=[BLUE]
        )
        written, transport = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertIn(b"Content-Length: 100\r\n", written)
        self.assertTrue(written.endswith(b"\r\n\r\npart"), written)
        self.assertTrue(transport.disconnected, "client connection was not aborted")

    def test_client_disconnect_mid_body_stops_backend(self) -> None:
        """If the client leaves mid-body, then the backend connection is stopped, so it is never pooled."""

        @implementer(IResponse)
        class Endless(HalfResponse):
            def deliverBody(self, protocol):  # type: ignore[no-untyped-def]
                protocol.makeConnection(self.backend_transport)
                protocol.dataReceived(b"first")

        response = Endless()
        proxy = InMemoryProxy(
            agent=ScriptedAgent(lambda: succeed(response)), extra_backends=[BLUE]
        )
        written, transport = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(written.endswith(b"first"))
        self.assertEqual(response.backend_transport.producerState, "producing")
        transport.protocol.connectionLost(Failure(error.ConnectionLost()))
        self.assertEqual(response.backend_transport.producerState, "stopped")
        self.assertEqual(proxy.access[0].outcome, "client closed")

    def test_unknown_length_streams_chunked(self) -> None:
        """If the backend's body has no declared length, then the client gets it chunked and complete."""

        @implementer(IResponse)
        class Unframed(HalfResponse):
            length = UNKNOWN_LENGTH

            def deliverBody(self, protocol):  # type: ignore[no-untyped-def]
                from twisted.web.client import ResponseDone

                protocol.makeConnection(self.backend_transport)
                protocol.dataReceived(b"abc")
                protocol.connectionLost(Failure(ResponseDone()))

        proxy = InMemoryProxy(
            agent=ScriptedAgent(lambda: succeed(Unframed())), extra_backends=[BLUE]
        )
        written, transport = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertIn(b"Transfer-Encoding: chunked\r\n", written)
        self.assertTrue(written.endswith(b"3\r\nabc\r\n0\r\n\r\n"), written)
        self.assertFalse(transport.disconnecting)
