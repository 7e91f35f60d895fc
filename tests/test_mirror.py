"""Shadow traffic through the proxy, in memory: what a copy carries, what is not copied, and that the client never waits on it."""

from __future__ import annotations

from io import BytesIO

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, Cooperator
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse
from twisted.web.resource import Resource

from sillyproxy._mirror import MAX_MIRRORED_BODY, Mirror

from .support import CaptureResource, HeldResource, InMemoryProxy, backend


def _proxy(
    green: Resource | None = None,
    percent: float = 100.0,
    green_weight: int = 0,
    max_inflight: int = 100,
    response_timeout: float = 60.0,
) -> tuple[InMemoryProxy, CaptureResource, Resource]:
    blue = CaptureResource(body=b"blue")
    green = green if green is not None else CaptureResource(body=b"green")
    proxy = InMemoryProxy(
        [
            (backend("blue", "http://blue.internal:8080", 1), blue),
            (backend("green", "http://green.internal:8080/v2", green_weight), green),
        ],
        mirrors=[("green", percent)],
        mirror_max_inflight=max_inflight,
        response_timeout=response_timeout,
    )
    return proxy, blue, green


def _get(proxy: InMemoryProxy, request: bytes) -> bytes:
    written, _ = proxy.raw(request)
    proxy.flush()
    return written


class MirrorTests(SynchronousTestCase):
    def test_copy_is_the_clients_request_marked(self) -> None:
        """If a request is drawn, then green gets its method, target, headers (cookies included) and body, with Color: green and Sillyproxy-Mirror: 1, while the client gets blue's answer."""
        proxy, blue, green = _proxy()
        written = _get(
            proxy,
            b"POST /cart?id=7 HTTP/1.1\r\nHost: shop.example\r\nCookie: session=abc\r\n"
            b"X-Custom: yes\r\nContent-Length: 5\r\n\r\nhello",
        )
        self.assertTrue(written.startswith(b"HTTP/1.1 200 "), written)
        self.assertTrue(written.endswith(b"blue"), written)
        [copy] = green.seen  # type: ignore[attr-defined]
        [original] = blue.seen
        self.assertEqual((copy.method, copy.uri, copy.body), (b"POST", b"/v2/cart?id=7", b"hello"))
        headers = copy.headers
        self.assertEqual(headers.getRawHeaders(b"color"), [b"green"])
        self.assertEqual(headers.getRawHeaders(b"sillyproxy-mirror"), [b"1"])
        self.assertEqual(headers.getRawHeaders(b"cookie"), [b"session=abc"])
        self.assertEqual(headers.getRawHeaders(b"host"), [b"shop.example"])
        self.assertEqual(headers.getRawHeaders(b"x-custom"), [b"yes"])
        self.assertEqual(headers.getRawHeaders(b"x-request-id"), original.headers.getRawHeaders(b"x-request-id"))
        self.assertIsNone(original.headers.getRawHeaders(b"sillyproxy-mirror"))
        self.assertEqual(original.body, b"hello")
        self.assertEqual(proxy.mirrors[0].counts, {"sent": 1, "dropped": 0, "too_large": 0, "failed": 0})
        # One request in the access log: the copy is not a request of the client's.
        self.assertEqual([r.color for r in proxy.access], ["blue"])

    def test_requests_the_mirrored_colour_serves_are_not_copied(self) -> None:
        """If green serves a request itself, then it gets no copy of it."""
        proxy, blue, green = _proxy(green_weight=1)
        for _ in range(40):
            _get(proxy, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        served_by_green = sum(r.color == "green" for r in proxy.access)
        self.assertGreater(served_by_green, 5)
        self.assertEqual(len(green.seen), 40)  # type: ignore[attr-defined]
        self.assertEqual(proxy.mirrors[0].counts["sent"], 40 - served_by_green)

    def test_a_request_that_fails_over_to_the_mirrored_colour_is_not_copied(self) -> None:
        """If blue refuses and the request fails over to green, then green serves it and gets no copy of it."""
        proxy, _, green = _proxy(green_weight=1)
        del proxy.network.servers[proxy.backend_addresses["blue"]]
        for _ in range(10):
            written = _get(proxy, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            self.assertTrue(written.endswith(b"green"), written)
        self.assertIn("failover", [r.outcome for r in proxy.access])
        self.assertEqual(len(green.seen), 10)  # type: ignore[attr-defined]
        self.assertEqual(proxy.mirrors[0].counts["sent"], 0)

    def test_a_request_no_colour_answers_is_not_copied(self) -> None:
        """If the chosen colour fails and there is nowhere to fail over, then nothing is copied."""
        proxy, _, green = _proxy()
        del proxy.network.servers[proxy.backend_addresses["blue"]]
        written = _get(proxy, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
        self.assertTrue(written.startswith(b"HTTP/1.1 502 "), written)
        self.assertEqual(green.seen, [])  # type: ignore[attr-defined]

    def test_percentage_of_requests(self) -> None:
        """If green mirrors 10 %, then about a tenth of requests are copied."""
        proxy, _, green = _proxy(percent=10.0)
        for _ in range(1000):
            _get(proxy, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        copies = len(green.seen)  # type: ignore[attr-defined]
        # Binomial(1000, 0.1): 100 +- 9.5; five standard deviations either way.
        self.assertTrue(52 <= copies <= 148, copies)

    def test_zero_percent_copies_nothing(self) -> None:
        """If green mirrors 0 %, then nothing is copied."""
        proxy, _, green = _proxy(percent=0.0)
        for _ in range(50):
            _get(proxy, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(green.seen, [])  # type: ignore[attr-defined]

    def test_bodies_over_a_mebibyte_are_not_copied(self) -> None:
        """If a drawn request's body is over 1 MiB, declared or chunked, then it is not copied and counts as too_large; exactly 1 MiB is copied."""
        proxy, blue, green = _proxy()
        big = b"x" * (MAX_MIRRORED_BODY + 1)
        _get(proxy, b"PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(big) + big)
        chunked = b"%x\r\n" % len(big) + big + b"\r\n0\r\n\r\n"
        _get(proxy, b"PUT /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
        fits = b"y" * MAX_MIRRORED_BODY
        _get(proxy, b"PUT /c HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(fits) + fits)
        self.assertEqual([c.uri for c in green.seen], [b"/v2/c"])  # type: ignore[attr-defined]
        self.assertEqual(green.seen[0].body, fits)  # type: ignore[attr-defined]
        self.assertEqual([len(c.body) for c in blue.seen], [len(big), len(big), len(fits)])
        self.assertEqual(proxy.mirrors[0].counts["too_large"], 2)

    def test_client_never_waits_for_the_copy(self) -> None:
        """If green never answers, then the client still gets blue's answer at once."""
        hanging = HeldResource()
        proxy, _, _ = _proxy(green=hanging)
        written = _get(proxy, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(written.endswith(b"blue"), written)
        self.assertEqual(len(hanging.held), 1)
        self.assertEqual(proxy.mirrors[0].inflight, 1)

    def test_copies_over_the_limit_are_dropped(self) -> None:
        """If copies in flight reach the limit, then further ones are dropped and counted, and the limit frees up as copies end."""
        hanging = HeldResource()
        proxy, _, _ = _proxy(green=hanging, max_inflight=2, response_timeout=5.0)
        for _ in range(5):
            _get(proxy, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        mirror = proxy.mirrors[0]
        self.assertEqual(len(hanging.held), 2)
        self.assertEqual((mirror.counts["dropped"], mirror.inflight), (3, 2))
        # The hung copies are abandoned at the timeout and count as failed.
        proxy.clock.advance(5)
        proxy.flush()
        self.assertEqual((mirror.counts["failed"], mirror.inflight), (2, 0))
        _get(proxy, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(len(hanging.held), 3)

    def test_unreachable_colour_counts_failed(self) -> None:
        """If green refuses connections, then copies fail, are counted, and the client is unaffected."""
        proxy, _, _ = _proxy()
        del proxy.network.servers[proxy.backend_addresses["green"]]
        written = _get(proxy, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(written.endswith(b"blue"), written)
        self.assertEqual(proxy.mirrors[0].counts["failed"], 1)
        self.assertEqual(proxy.mirrors[0].inflight, 0)

    def test_answers_cookies_are_never_stored(self) -> None:
        """If green's answer sets a cookie, then the next copy does not carry it."""
        green = CaptureResource(headers=[(b"set-cookie", [b"tracker=1; Path=/"])], body=b"green")
        proxy, _, _ = _proxy(green=green)
        _get(proxy, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        _get(proxy, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual([c.headers.getRawHeaders(b"cookie") for c in green.seen], [None, None])

    def test_upgrades_are_not_copied(self) -> None:
        """If a request asks to switch protocols (a WebSocket), then it is not copied."""
        proxy, _, green = _proxy()
        _get(
            proxy,
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        self.assertEqual(green.seen, [])  # type: ignore[attr-defined]


class _Silent:
    """An upstream whose requests are never answered."""

    available = True
    addresses = ()

    def __init__(self) -> None:
        self.sent: list[Deferred[IResponse]] = []

    def request(self, method, uri, headers=None, bodyProducer=None, sent_to=None):  # type: ignore[no-untyped-def]
        waiting: Deferred[IResponse] = Deferred()
        self.sent.append(waiting)
        return waiting


class MirrorLimitTests(SynchronousTestCase):
    def test_buffered_bodies_are_bounded(self) -> None:
        """If copies in flight hold as many body bytes as allowed, then the next copy with a body is dropped, and one without a body still goes."""
        clock = Clock()
        upstream = _Silent()
        mirror = Mirror(
            backend("green", "http://g"), 100.0, upstream, clock, Cooperator(), lambda n: 0, 100, 60.0,
            max_buffered=25,
        )
        for _ in range(3):
            mirror.copy(b"PUT", b"http://g/", Headers(), BytesIO(b"x" * 10))
        self.assertEqual((len(upstream.sent), mirror.buffered, mirror.counts["dropped"]), (2, 20, 1))
        mirror.copy(b"GET", b"http://g/", Headers(), None)
        self.assertEqual(len(upstream.sent), 3)
        # At the timeout the copies are abandoned and their bytes let go.
        clock.advance(60)
        self.assertEqual((mirror.buffered, mirror.inflight, mirror.counts["failed"]), (0, 0, 3))

    def test_body_is_left_where_it_was(self) -> None:
        """If the forwarded request's body is being read, then copying it leaves the file where it was."""
        body = BytesIO(b"0123456789")
        body.seek(4)
        upstream = _Silent()
        mirror = Mirror(backend("green", "http://g"), 100.0, upstream, Clock(), Cooperator(), lambda n: 0, 1, 60.0)
        mirror.copy(b"PUT", b"http://g/", Headers(), body)
        self.assertEqual(body.tell(), 4)
