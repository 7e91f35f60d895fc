"""Table tests for the header rules on each side of the forwarding hop."""

from __future__ import annotations

import string
from ipaddress import ip_network

from twisted.trial.unittest import SynchronousTestCase

from sillyproxy import _headers
from sillyproxy._headers import (
    HOP_BY_HOP,
    connection_named,
    connection_tokens,
    for_backend,
    for_client,
    is_trusted,
    new_request_id,
    real_client,
    request_id,
)

from .support import TableTests, rows


def _names(headers: list[tuple[bytes, object]]) -> set[bytes]:
    return {name.lower() for name, _ in headers}


def _value(headers: list[tuple[bytes, list[bytes]]], name: bytes) -> list[bytes] | None:
    for key, values in headers:
        if key.lower() == name:
            return list(values)
    return None


class RequestHeaderTableTests(TableTests):
    @rows(
        ([], set()),
        ([(b"Connection", [b"close"])], {b"close"}),
        ([(b"Connection", [b"Keep-Alive, X-Foo ,,x-bar"])], {b"keep-alive", b"x-foo", b"x-bar"}),
        ([(b"connection", [b"a", b"B"])], {b"a", b"b"}),
    )
    def test_connection_named(self, headers: list, named: set[bytes]) -> None:
        """If Connection lists tokens, then each is a lower-cased header name to drop."""
        self.assertEqual(connection_named(headers), named)

    @rows(*[(name,) for name in sorted(HOP_BY_HOP | {b"content-length"})])
    def test_request_hop_by_hop_dropped(self, name: bytes) -> None:
        """If a client sends a hop-by-hop or framing header, then the backend never sees it."""
        out = for_backend(
            [(name.title(), [b"x"]), (b"Accept", [b"*/*"])], b"blue", b"127.0.0.1", b"http", b"id-1"
        )
        self.assertNotIn(name, _names(out))
        self.assertEqual(_value(out, b"accept"), [b"*/*"])

    @rows(
        (None, b"generated"),
        ([b"abc-123"], b"abc-123"),
        ([b"x" * 128], b"x" * 128),
        ([b"x" * 129], b"generated"),
        ([b""], b"generated"),
        ([b"has space"], b"generated"),
        ([b"caf\xc3\xa9"], b"generated"),
        ([b"a", b"b"], b"generated"),
    )
    def test_request_id(self, sent: list[bytes] | None, expected: bytes) -> None:
        """If the client sends one X-Request-Id of 1 to 128 visible ASCII characters, then it is the id; else one is generated."""
        self.assertEqual(request_id(sent, lambda: b"generated"), expected)


    @rows(
        ([b"Host"], [b"f"]),
        ([b"host, X-Foo"], None),
        ([b"close", b"HOST"], [b"f"]),
        ([b"x-foo", b"Host ,"], None),
    )
    def test_connection_never_drops_host(self, connection: list[bytes], foo: list[bytes] | None) -> None:
        """
        If Connection names Host, then Host still reaches the backend as sent
        (and X-Forwarded-Host from it): without it Agent would send the
        backend's own name, and the client cannot change the host that way.
        """
        out = for_backend(
            [(b"Host", [b"shop.example"]), (b"Connection", connection), (b"X-Foo", [b"f"])],
            b"blue",
            b"127.0.0.1",
            b"http",
            b"id-1",
        )
        self.assertEqual(_value(out, b"host"), [b"shop.example"])
        self.assertEqual(_value(out, b"x-forwarded-host"), [b"shop.example"])
        self.assertEqual(_value(out, b"x-foo"), foo)

    @rows(
        (b"203.0.113.7", b"http", [b"shop.example"], b"for=203.0.113.7;proto=http;host=shop.example"),
        (
            b"2001:db8::1",
            b"https",
            [b"shop.example:8443"],
            b'for="[2001:db8::1]";proto=https;host="shop.example:8443"',
        ),
        (b"fe80::1%eth0", b"http", [b"h"], b'for="[fe80::1%eth0]";proto=http;host=h'),
        (None, b"http", [b"shop.example"], b"proto=http;host=shop.example"),
        (b"10.0.0.1", b"http", None, b"for=10.0.0.1;proto=http"),
        (b"10.0.0.1", b"http", [b"a.example", b"b.example"], b"for=10.0.0.1;proto=http"),
        (None, b"https", [b"[::1]:8080"], b'proto=https;host="[::1]:8080"'),
        (None, b"http", [b'a"b\\c d'], b'proto=http;host="a\\"b\\\\c d"'),
        (None, b"http", [b"caf\xc3\xa9"], b'proto=http;host="caf\xc3\xa9"'),
        (None, b"http", [b"a\x01b"], b"proto=http"),
        (None, b"http", [b""], b'proto=http;host=""'),
    )
    def test_forwarded_element(
        self, client: bytes | None, proto: bytes, host: list[bytes] | None, element: bytes
    ) -> None:
        """
        If a request passes this hop, then Forwarded carries this hop's
        element (RFC 7239): for, proto and host, each a token or else a
        quoted string with " and \\ escaped; for is left out without a client
        IP, host without a single Host or when no quoted string can hold it.
        """
        headers = [] if host is None else [(b"Host", host)]
        for trusted in (False, True):
            out = for_backend(headers, b"blue", client, proto, b"id-1", trusted=trusted)
            self.assertEqual(_value(out, b"forwarded"), [element], trusted)


_NETWORKS = (ip_network("10.0.0.0/8"), ip_network("2001:db8::/32"))


class TrustTableTests(TableTests):
    @rows(
        (None, _NETWORKS, False),
        ("10.0.0.1", (), False),
        ("10.0.0.1", _NETWORKS, True),
        ("11.0.0.1", _NETWORKS, False),
        ("::ffff:10.0.0.1", _NETWORKS, True),
        ("::ffff:11.0.0.1", _NETWORKS, False),
        ("::ffff:10.0.0.1", (ip_network("::ffff:0:0/96"),), True),
        ("2001:db8::1", _NETWORKS, True),
        ("2001:db9::1", _NETWORKS, False),
        ("10.0.0.1", (ip_network("::/0"),), False),
        ("2001:db8::1", (ip_network("0.0.0.0/0"),), False),
        ("fe80::1%eth0", (ip_network("fe80::/10"),), True),
        ("not-an-ip", (ip_network("0.0.0.0/0"), ip_network("::/0")), False),
        ("", _NETWORKS, False),
    )
    def test_is_trusted(self, peer: str | None, networks: tuple, trusted: bool) -> None:
        """If the peer's address (IPv4-mapped ones as IPv4 too) is in a trusted network, then it is trusted."""
        self.assertIs(is_trusted(peer, networks), trusted)

    @rows(
        ("203.0.113.9", [b"198.51.100.1"], "203.0.113.9"),
        ("10.0.0.1", None, "10.0.0.1"),
        ("10.0.0.1", [], "10.0.0.1"),
        ("10.0.0.1", [b""], "10.0.0.1"),
        ("10.0.0.1", [b"203.0.113.5"], "203.0.113.5"),
        ("10.0.0.1", [b"198.51.100.1, 203.0.113.5, 10.0.0.2"], "203.0.113.5"),
        ("10.0.0.1", [b"198.51.100.1, 203.0.113.5", b"10.0.0.2"], "203.0.113.5"),
        ("10.0.0.1", [b"203.0.113.5,,\t10.0.0.2 ,"], "203.0.113.5"),
        ("10.0.0.1", [b"10.0.0.3, 10.0.0.2"], "10.0.0.3"),
        ("10.0.0.1", [b"2001:db8::5, 2001:db8::7"], "2001:db8::5"),
        ("10.0.0.1", [b"2001:db9::5, 2001:db8::7"], "2001:db9::5"),
        ("10.0.0.1", [b"203.0.113.5, ::ffff:10.0.0.9"], "203.0.113.5"),
        ("::ffff:10.0.0.1", [b"203.0.113.5"], "203.0.113.5"),
        ("10.0.0.1", [b"203.0.113.5, unknown, 10.0.0.2"], "10.0.0.2"),
        ("10.0.0.1", [b"10.0.0.2, junk"], "10.0.0.1"),
        ("10.0.0.1", [b"[2001:db9::5]"], "10.0.0.1"),
        ("10.0.0.1", [b"203.0.113.5:4711"], "10.0.0.1"),
        ("10.0.0.1", [b"fe80::1%evil"], "10.0.0.1"),
        ("10.0.0.1", [b"caf\xc3\xa9"], "10.0.0.1"),
    )
    def test_real_client(self, peer: str, forwarded_for: list[bytes] | None, client: str) -> None:
        """
        If the peer is trusted, then the client is the rightmost
        X-Forwarded-For address that is not trusted (the leftmost if all
        are), and a malformed entry stops the walk at the last good address
        (or the peer); an untrusted peer is the client itself.
        """
        self.assertEqual(real_client(peer, forwarded_for, _NETWORKS), client)


class RequestHeaderTests(SynchronousTestCase):
    def test_request_connection_named_dropped(self) -> None:
        """If Connection names a header, then that header is dropped too."""
        out = for_backend(
            [(b"Connection", [b"X-Secret, close"]), (b"X-Secret", [b"s"]), (b"X-Kept", [b"k"])],
            b"blue",
            None,
            b"http",
            b"id-1",
        )
        self.assertEqual(_value(out, b"x-kept"), [b"k"])
        self.assertNotIn(b"x-secret", _names(out))
        self.assertNotIn(b"connection", _names(out))

    def test_request_forwarding_headers(self) -> None:
        """If a client sends Color and X-Forwarded-*, then Color and Proto/Host are replaced and For appended."""
        out = for_backend(
            [
                (b"Host", [b"shop.example"]),
                (b"Color", [b"green"]),
                (b"X-Forwarded-For", [b"203.0.113.1", b"203.0.113.2"]),
                (b"X-Forwarded-Proto", [b"https"]),
                (b"X-Forwarded-Host", [b"evil.example"]),
                (b"X-Request-Id", [b"client-id"]),
            ],
            b"blue",
            b"127.0.0.5",
            b"http",
            b"proxy-id",
        )
        self.assertEqual(_value(out, b"color"), [b"blue"])
        self.assertEqual(_value(out, b"host"), [b"shop.example"])
        self.assertEqual(_value(out, b"x-forwarded-for"), [b"203.0.113.1, 203.0.113.2, 127.0.0.5"])
        self.assertEqual(_value(out, b"x-forwarded-proto"), [b"http"])
        self.assertEqual(_value(out, b"x-forwarded-host"), [b"shop.example"])
        self.assertEqual(_value(out, b"x-request-id"), [b"proxy-id"])

    def test_client_cannot_pass_as_a_mirrored_copy(self) -> None:
        """If a client sends Sillyproxy-Mirror, then it never reaches the backend, trusted peer or not."""
        for trusted in (False, True):
            out = for_backend(
                [(b"Sillyproxy-Mirror", [b"1"]), (b"Accept", [b"*/*"])],
                b"blue",
                b"127.0.0.5",
                b"http",
                b"id-1",
                trusted=trusted,
            )
            self.assertNotIn(b"sillyproxy-mirror", _names(out))
            self.assertEqual(_value(out, b"accept"), [b"*/*"])

    def test_request_without_host_or_address(self) -> None:
        """If there is no Host and no client IP, then no X-Forwarded-Host or -For is invented."""
        out = for_backend([(b"Accept", [b"*/*"])], b"green", None, b"https", b"id-1")
        self.assertIsNone(_value(out, b"x-forwarded-host"))
        self.assertIsNone(_value(out, b"x-forwarded-for"))
        self.assertEqual(_value(out, b"x-forwarded-proto"), [b"https"])
        self.assertEqual(_value(out, b"color"), [b"green"])

    def test_untrusted_peer_cannot_claim(self) -> None:
        """
        If an untrusted peer sends Forwarded, X-Real-IP and X-Forwarded-*,
        then Forwarded and X-Real-IP are removed, Proto and Host replaced,
        For appended, and Forwarded is this hop's element alone.
        """
        out = for_backend(
            [
                (b"Host", [b"shop.example"]),
                (b"Forwarded", [b"for=198.51.100.66"]),
                (b"X-Real-IP", [b"198.51.100.66"]),
                (b"X-Forwarded-For", [b"198.51.100.66"]),
                (b"X-Forwarded-Proto", [b"https"]),
                (b"X-Forwarded-Host", [b"evil.example"]),
            ],
            b"blue",
            b"203.0.113.7",
            b"http",
            b"id-1",
        )
        self.assertIsNone(_value(out, b"x-real-ip"))
        self.assertEqual(_value(out, b"forwarded"), [b"for=203.0.113.7;proto=http;host=shop.example"])
        self.assertEqual(_value(out, b"x-forwarded-for"), [b"198.51.100.66, 203.0.113.7"])
        self.assertEqual(_value(out, b"x-forwarded-proto"), [b"http"])
        self.assertEqual(_value(out, b"x-forwarded-host"), [b"shop.example"])
        self.assertEqual(len(out), len({name.lower() for name, _ in out}))

    def test_trusted_peer_keeps_its_claims(self) -> None:
        """
        If a trusted peer sends Forwarded, X-Real-IP and X-Forwarded-*, then
        they are kept, with its address appended to X-Forwarded-For and this
        hop's element appended to Forwarded.
        """
        out = for_backend(
            [
                (b"Host", [b"shop.example"]),
                (b"Forwarded", [b"for=198.51.100.1;proto=https", b'for="[2001:db8::9]"']),
                (b"X-Real-IP", [b"198.51.100.1"]),
                (b"X-Forwarded-For", [b"198.51.100.1"]),
                (b"X-Forwarded-Proto", [b"https"]),
                (b"X-Forwarded-Host", [b"www.example"]),
            ],
            b"blue",
            b"10.0.0.2",
            b"http",
            b"id-1",
            trusted=True,
        )
        self.assertEqual(_value(out, b"x-real-ip"), [b"198.51.100.1"])
        self.assertEqual(
            _value(out, b"forwarded"),
            [b'for=198.51.100.1;proto=https, for="[2001:db8::9]", for=10.0.0.2;proto=http;host=shop.example'],
        )
        self.assertEqual(_value(out, b"x-forwarded-for"), [b"198.51.100.1, 10.0.0.2"])
        self.assertEqual(_value(out, b"x-forwarded-proto"), [b"https"])
        self.assertEqual(_value(out, b"x-forwarded-host"), [b"www.example"])
        self.assertEqual(len(out), len({name.lower() for name, _ in out}))

    def test_trusted_peer_without_claims(self) -> None:
        """
        If a trusted peer sends no X-Forwarded-Proto or -Host (or names them
        in Connection), then they are set as for anyone.
        """
        for sent in (
            [(b"Host", [b"shop.example"])],
            [
                (b"Host", [b"shop.example"]),
                (b"Connection", [b"X-Forwarded-Proto, X-Forwarded-Host"]),
                (b"X-Forwarded-Proto", [b"https"]),
                (b"X-Forwarded-Host", [b"www.example"]),
            ],
        ):
            out = for_backend(sent, b"blue", b"10.0.0.2", b"http", b"id-1", trusted=True)
            self.assertEqual(_value(out, b"x-forwarded-proto"), [b"http"])
            self.assertEqual(_value(out, b"x-forwarded-host"), [b"shop.example"])
            self.assertEqual(_value(out, b"forwarded"), [b"for=10.0.0.2;proto=http;host=shop.example"])

    def test_new_request_ids_are_unique_hex(self) -> None:
        """If ids are generated, then each is 32 lower-case hex digits and none repeats."""
        ids = {new_request_id() for _ in range(1000)}
        self.assertEqual(len(ids), 1000)
        hex_digits = set(string.hexdigits.lower().encode())
        self.assertEqual([i for i in ids if len(i) != 32 or not set(i) <= hex_digits], [])


class ConnectionTokenTests(TableTests):
    @rows(
        ([b"keep-alive"], {b"keep-alive"}),
        ([b"Keep-Alive"], {b"keep-alive"}),
        ([b"close, X-Secret"], {b"close", b"x-secret"}),
        ([b" , ,TE ,"], {b"te"}),
        ([b""], set()),
        ([b"a", b"B, c"], {b"a", b"b", b"c"}),
        ([], set()),
    )
    def test_tokens(self, values: list[bytes], expected: set[bytes]) -> None:
        """If Connection has these values, then its tokens are the lower-cased comma-separated names, asked once or again."""
        self.assertEqual(connection_tokens(values), expected)
        self.assertEqual(connection_tokens(values), expected)

    def test_remembered_values_are_bounded(self) -> None:
        """If clients send many different Connection values, then the tokens remembered stay bounded and each answer is still right."""
        limit = _headers._tokens_of.cache_info().maxsize
        assert limit is not None
        for i in range(3 * limit):
            self.assertEqual(connection_tokens([b"x-%d" % i]), {b"x-%d" % i})
        self.assertLessEqual(_headers._tokens_of.cache_info().currsize, limit)


class ResponseHeaderTests(SynchronousTestCase):
    def test_response_keeps_repeated_headers(self) -> None:
        """If a backend sends several Set-Cookie headers, then each reaches the client separately."""
        out = for_client(
            [
                (b"Set-Cookie", [b"a=1", b"b=2"]),
                (b"Content-Encoding", [b"gzip"]),
                (b"Keep-Alive", [b"timeout=5"]),
                (b"Trailer", [b"X-Sum"]),
                (b"Proxy-Authenticate", [b"Basic"]),
            ]
        )
        self.assertEqual(out, [(b"Set-Cookie", [b"a=1", b"b=2"]), (b"Content-Encoding", [b"gzip"])])

    def test_response_head_content_length_passes(self) -> None:
        """
        If a HEAD response carries Content-Length (Agent keeps it only there),
        then it passes, describing the resource.
        """
        self.assertEqual(for_client([(b"Content-Length", [b"12"])]), [(b"Content-Length", [b"12"])])
