"""
Sticky routing and tester overrides through the proxy, in memory, with the
real forwarding hop (trial can run these too).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._admin import admin_resource
from sillyproxy._metrics import ProxyMetrics
from sillyproxy._routing import Router
from sillyproxy._sticky import Ranker, parse_sticky
from sillyproxy.override import make_pass

from .support import CaptureResource, InMemoryProxy, RawBackendFactory, backend

SECRET = b"sticky secret"
OVERRIDE = b"override secret"


def _metrics(router: Router) -> ProxyMetrics:
    return ProxyMetrics(CollectorRegistry(), router, "test", lambda: {}, lambda: 0.0)


class StickyProxy:
    """A proxy with blue (weight 4) and green (weight 1), each a capturing backend."""

    def __init__(self, sticky: str = "cookie", green_weight: int = 1, **options: object) -> None:
        self.blue, self.green = CaptureResource(body=b"blue"), CaptureResource(body=b"green")
        self.backends = [
            backend("blue", "http://blue.internal:8080", 4),
            backend("green", "http://green.internal:8080", green_weight),
        ]
        self.proxy = InMemoryProxy(
            [(self.backends[0], self.blue), (self.backends[1], self.green)],
            sticky_secret=SECRET,
            metrics_for=_metrics,
            forward_options={"sticky": parse_sticky(sticky), **options},
        )
        self.ranker = Ranker([("blue", 4), ("green", green_weight)], SECRET)

    def get(self, headers: bytes = b"") -> bytes:
        written, _ = self.proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n")
        return written


def _set_cookie(written: bytes) -> bytes | None:
    for line in written.split(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"set-cookie: sillyproxy="):
            return line.split(b": ", 1)[1]
    return None


def _body(written: bytes) -> bytes:
    return written.split(b"\r\n\r\n", 1)[1]


class CookieModeTests(SynchronousTestCase):
    def test_first_request_gets_a_key_and_is_routed_by_it(self) -> None:
        """If a request has no sticky cookie, then it gets a new 128-bit key in Set-Cookie with the contract's attributes, and this very request goes to that key's colour."""
        proxy = StickyProxy()
        written = proxy.get()
        header = _set_cookie(written)
        assert header is not None, written
        key, _, attributes = header.partition(b"; ")
        value = key.split(b"=", 1)[1]
        self.assertEqual(len(value), 22)
        self.assertEqual(attributes, b"Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax")
        self.assertEqual(_body(written).decode(), proxy.ranker.rank(value)[0])
        self.assertEqual(proxy.proxy.access[0].outcome, "sticky")

    def test_a_cookie_keeps_its_colour_and_reaches_the_backend_untouched(self) -> None:
        """If a request carries a valid sticky cookie, then every request with it goes to the same colour, no new cookie is set, and the backend gets the cookie as sent."""
        proxy = StickyProxy()
        keys = [b"user-%d" % i for i in range(40)]
        greens = [k for k in keys if proxy.ranker.rank(k)[0] == "green"][:2]
        blues = [k for k in keys if proxy.ranker.rank(k)[0] == "blue"][:2]
        self.assertEqual((len(greens), len(blues)), (2, 2))
        for key in greens + blues + [b"abcDEF_-0123456789"]:
            colours = {
                _body(proxy.get(b"Cookie: other=1; sillyproxy=" + key + b"; last=2\r\n")) for _ in range(10)
            }
            self.assertEqual(colours, {proxy.ranker.rank(key)[0].encode()})
        written = proxy.get(b"Cookie: sillyproxy=user-1\r\n")
        self.assertIsNone(_set_cookie(written))
        served = proxy.blue if _body(written) == b"blue" else proxy.green
        self.assertEqual(served.seen[-1].headers.getRawHeaders(b"cookie"), [b"sillyproxy=user-1"])

    def test_invalid_cookie_is_replaced(self) -> None:
        """If the sticky cookie's value is not 1-128 characters of [A-Za-z0-9_-], then it is treated as absent: a new key is set."""
        proxy = StickyProxy()
        for bad in (b"", b"has space", b"a" * 129, b"semi%3B"):
            written = proxy.get(b"Cookie: sillyproxy=" + bad + b"\r\n")
            self.assertIsNotNone(_set_cookie(written), bad)

    def test_failover_goes_to_the_keys_next_best(self) -> None:
        """If a key's colour cannot connect, then the request fails over to the key's next-best colour by the same hash (not the heaviest, not a draw)."""
        blue, green, red = CaptureResource(body=b"blue"), CaptureResource(body=b"green"), CaptureResource(body=b"red")
        backends = [
            backend("blue", "http://blue.internal:8080", 4),
            backend("green", "http://green.internal:8080", 1),
            backend("red", "http://red.internal:8080", 1),
        ]
        proxy = InMemoryProxy(
            list(zip(backends, (blue, green, red))),
            sticky_secret=SECRET,
            forward_options={"sticky": parse_sticky("cookie")},
        )
        ranker = Ranker([("blue", 4), ("green", 1), ("red", 1)], SECRET)
        key = next(k for k in (b"k%d" % i for i in range(500)) if ranker.rank(k)[:2] == ["green", "red"])
        # Nothing listens there any more: connections are refused.
        del proxy.network.servers[proxy.backend_addresses["green"]]
        for _ in range(5):
            written, _ = proxy.raw(b"GET / HTTP/1.1\r\nHost: a\r\nCookie: sillyproxy=" + key + b"\r\n\r\n")
            self.assertEqual(_body(written), b"red")
        self.assertEqual(proxy.access[0].outcome, "failover")

    def test_weight_zero_gets_no_sticky_user(self) -> None:
        """If a colour's weight is 0, then no key is routed to it."""
        proxy = StickyProxy(green_weight=0)
        colours = {_body(proxy.get(b"Cookie: sillyproxy=u%d\r\n" % i)) for i in range(50)}
        self.assertEqual(colours, {b"blue"})


class OtherKeyTests(SynchronousTestCase):
    def test_header_mode(self) -> None:
        """If the key is a request header, then its value decides the colour; an empty or absent one gets the weighted draw."""
        proxy = StickyProxy("header:X-User-Id")
        users = [b"user%d" % i for i in range(40)]
        chosen = [next(u for u in users if proxy.ranker.rank(u)[0] == colour) for colour in ("green", "blue", "green")]
        for user in chosen:
            written = proxy.get(b"X-User-Id: " + user + b"\r\n")
            self.assertEqual(_body(written).decode(), proxy.ranker.rank(user)[0])
            self.assertIsNone(_set_cookie(written))
        proxy.get(b"X-User-Id: \r\n")
        proxy.get()
        self.assertEqual([r.outcome for r in proxy.proxy.access], ["sticky"] * 3 + ["", ""])

    def test_ip_mode(self) -> None:
        """If the key is the client's IP address, then it decides the colour."""
        proxy = StickyProxy("ip")
        written = proxy.get()
        self.assertEqual(_body(written).decode(), proxy.ranker.rank(b"127.0.0.9")[0])


class OverrideTests(SynchronousTestCase):
    def proxy(self, **options: object) -> StickyProxy:
        return StickyProxy("off", green_weight=0, override_secret=OVERRIDE, **options)

    def test_pass_reaches_a_weight_zero_colour_and_is_never_forwarded(self) -> None:
        """If a tester presents a valid pass (header or cookie, any case of the colour), then the request goes to that colour even at weight 0, and neither the header nor the cookie reaches the backend, while other cookies do, in order."""
        proxy = self.proxy()
        green = make_pass(OVERRIDE, "green")
        for presented in (
            b"Sillyproxy-Color: " + green.encode() + b"\r\n",
            b"Sillyproxy-Color: " + green.replace("green.", "GrEeN.").encode() + b"\r\n",
            b"Cookie: a=1; sillyproxy-color=" + green.encode() + b"; b=2\r\n",
        ):
            written = proxy.get(presented)
            self.assertEqual(_body(written), b"green", presented)
        for seen in proxy.green.seen:
            self.assertIsNone(seen.headers.getRawHeaders(b"sillyproxy-color"))
        self.assertEqual(proxy.green.seen[-1].headers.getRawHeaders(b"cookie"), [b"a=1; b=2"])
        self.assertEqual({r.outcome for r in proxy.proxy.access}, {"override"})

    def test_pass_beats_the_sticky_key_and_a_new_user_still_gets_a_cookie(self) -> None:
        """If a request carries both a sticky cookie and a valid pass, then the pass decides; and a new user's overridden request still gets its sticky cookie."""
        proxy = StickyProxy("cookie", green_weight=0, override_secret=OVERRIDE)
        green = make_pass(OVERRIDE, "green").encode()
        written = proxy.get(b"Cookie: sillyproxy=user-1\r\nSillyproxy-Color: " + green + b"\r\n")
        self.assertEqual(_body(written), b"green")
        self.assertIsNone(_set_cookie(written))
        written = proxy.get(b"Sillyproxy-Color: " + green + b"\r\n")
        self.assertEqual(_body(written), b"green")
        self.assertIsNotNone(_set_cookie(written))
        self.assertEqual([r.outcome for r in proxy.proxy.access], ["override", "override"])

    def test_wrong_pass_is_ignored_and_counted(self) -> None:
        """If a pass does not verify (or names an unknown colour), then the request is routed as usual, the pass is still taken off, and it is counted."""
        proxy = self.proxy()
        bad = make_pass(b"another secret", "green")
        for presented in (bad, make_pass(OVERRIDE, "purple"), "junk", "green."):
            written = proxy.get(b"Sillyproxy-Color: " + presented.encode() + b"\r\n")
            self.assertEqual(_body(written), b"blue")
        written = proxy.get(b"Cookie: sillyproxy-color=" + bad.encode() + b"\r\n")
        self.assertEqual(_body(written), b"blue")
        self.assertIsNone(proxy.blue.seen[-1].headers.getRawHeaders(b"sillyproxy-color"))
        self.assertIsNone(proxy.blue.seen[-1].headers.getRawHeaders(b"cookie"))
        scraped = generate_latest(proxy.proxy.metrics.registry).decode()
        self.assertIn("sillyproxy_override_rejected_total 5.0", scraped)

    def test_passes_are_not_counted_with_overrides_off(self) -> None:
        """If overrides are off, then a presented pass is removed but not counted as rejected."""
        proxy = StickyProxy("off")
        proxy.get(b"Sillyproxy-Color: green.x\r\n")
        scraped = generate_latest(proxy.proxy.metrics.registry).decode()
        self.assertIn("sillyproxy_override_rejected_total 0.0", scraped)

    def test_pass_is_removed_even_with_overrides_off(self) -> None:
        """If overrides are off, then a pass is still never forwarded."""
        proxy = StickyProxy("off")
        proxy.get(b"Sillyproxy-Color: green.x\r\nCookie: sillyproxy-color=green.x\r\n")
        seen = (proxy.blue.seen + proxy.green.seen)[-1]
        self.assertIsNone(seen.headers.getRawHeaders(b"sillyproxy-color"))
        self.assertIsNone(seen.headers.getRawHeaders(b"cookie"))

    def test_override_colour_that_cannot_serve_is_503(self) -> None:
        """If the overridden colour cannot connect, then 503 naming it, never another colour."""
        proxy = self.proxy()
        # Nothing listens there any more: connections are refused.
        del proxy.proxy.network.servers[proxy.proxy.backend_addresses["green"]]
        written = proxy.get(b"Sillyproxy-Color: " + make_pass(OVERRIDE, "green").encode() + b"\r\n")
        self.assertTrue(written.startswith(b"HTTP/1.1 503 "), written)
        self.assertTrue(written.endswith(b"override colour green has no healthy backend\n"), written)
        self.assertEqual(proxy.blue.seen, [])

    def test_override_request_that_reached_its_colour_fails_as_any_request(self) -> None:
        """If the overridden colour took the request and then failed (closed without answering), then the client gets that failure's status, not the 503 that says nothing was sent."""
        blue = CaptureResource(body=b"blue")
        backends = [backend("blue", "http://blue.internal:8080", 4), backend("green", "http://green.internal:8080", 0)]
        proxy = InMemoryProxy(
            [(backends[0], blue), (backends[1], RawBackendFactory(b"", close=True))],
            forward_options={"override_secret": OVERRIDE},
        )
        written, _ = proxy.raw(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nSillyproxy-Color: "
            + make_pass(OVERRIDE, "green").encode()
            + b"\r\n\r\nhi"
        )
        self.assertTrue(written.startswith(b"HTTP/1.1 502 "), written)
        self.assertTrue(written.endswith(b"backend closed the connection before responding\n"), written)
        self.assertEqual(blue.seen, [])

    def test_admin_hands_out_passes(self) -> None:
        """If overrides are on, then GET /override/COLOUR on the admin listener returns the pass; 404 for an unknown colour, a bare /override, a longer path, or with overrides off."""
        from twisted.web.resource import getChildForRequest
        from twisted.web.test.requesthelper import DummyRequest

        proxy = self.proxy()

        def get(secret: bytes | None, *path: bytes) -> tuple[int, bytes]:
            root = admin_resource(
                proxy.proxy.metrics, proxy.proxy.router, proxy.proxy.site, lambda: 0.0, "t", "tcp:1",
                override_secret=secret,
            )
            request = DummyRequest(list(path))
            body = getChildForRequest(root, request).render(request)
            return request.responseCode or 200, body

        self.assertEqual(get(OVERRIDE, b"override", b"green"), (200, make_pass(OVERRIDE, "green").encode() + b"\n"))
        self.assertEqual(get(OVERRIDE, b"override", b"GREEN")[0], 200)
        for path in ((b"override", b"purple"), (b"override",), (b"override", b"green", b"x")):
            self.assertEqual(get(OVERRIDE, *path)[0], 404, path)
        self.assertEqual(get(None, b"override", b"green")[0], 404)
