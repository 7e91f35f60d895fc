"""Table tests for the header rules on each side of the forwarding hop."""

from __future__ import annotations

import string

from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._headers import (
    HOP_BY_HOP,
    connection_named,
    for_backend,
    for_client,
    new_request_id,
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

    def test_request_without_host_or_address(self) -> None:
        """If there is no Host and no client IP, then no X-Forwarded-Host or -For is invented."""
        out = for_backend([(b"Accept", [b"*/*"])], b"green", None, b"https", b"id-1")
        self.assertIsNone(_value(out, b"x-forwarded-host"))
        self.assertIsNone(_value(out, b"x-forwarded-for"))
        self.assertEqual(_value(out, b"x-forwarded-proto"), [b"https"])
        self.assertEqual(_value(out, b"color"), [b"green"])

    def test_new_request_ids_are_unique_hex(self) -> None:
        """If ids are generated, then each is 32 lower-case hex digits and none repeats."""
        ids = {new_request_id() for _ in range(1000)}
        self.assertEqual(len(ids), 1000)
        hex_digits = set(string.hexdigits.lower().encode())
        self.assertEqual([i for i in ids if len(i) != 32 or not set(i) <= hex_digits], [])


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
