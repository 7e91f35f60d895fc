"""Table tests for the header rules on each side of the forwarding hop."""

from __future__ import annotations

import pytest

from sillyproxy._headers import (
    HOP_BY_HOP,
    connection_named,
    for_backend,
    for_client,
    new_request_id,
    request_id,
)


def _names(headers: list[tuple[bytes, object]]) -> set[bytes]:
    return {name.lower() for name, _ in headers}


def _value(headers: list[tuple[bytes, list[bytes]]], name: bytes) -> list[bytes] | None:
    for key, values in headers:
        if key.lower() == name:
            return list(values)
    return None


@pytest.mark.parametrize(
    "headers, named",
    [
        ([], set()),
        ([(b"Connection", [b"close"])], {b"close"}),
        ([(b"Connection", [b"Keep-Alive, X-Foo ,,x-bar"])], {b"keep-alive", b"x-foo", b"x-bar"}),
        ([(b"connection", [b"a", b"B"])], {b"a", b"b"}),
    ],
)
def test_connection_named(headers: list, named: set[bytes]) -> None:
    """If Connection lists tokens, then each is a lower-cased header name to drop."""
    assert connection_named(headers) == named


@pytest.mark.parametrize("name", sorted(HOP_BY_HOP | {b"content-length"}))
def test_request_hop_by_hop_dropped(name: bytes) -> None:
    """If a client sends a hop-by-hop or framing header, then the backend never sees it."""
    out = for_backend(
        [(name.title(), [b"x"]), (b"Accept", [b"*/*"])], b"blue", b"127.0.0.1", b"http", b"id-1"
    )
    assert name not in _names(out)
    assert _value(out, b"accept") == [b"*/*"]


def test_request_connection_named_dropped() -> None:
    """If Connection names a header, then that header is dropped too."""
    out = for_backend(
        [(b"Connection", [b"X-Secret, close"]), (b"X-Secret", [b"s"]), (b"X-Kept", [b"k"])],
        b"blue",
        None,
        b"http",
        b"id-1",
    )
    assert _names(out) >= {b"x-kept"}
    assert b"x-secret" not in _names(out)
    assert b"connection" not in _names(out)


def test_request_forwarding_headers() -> None:
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
    assert _value(out, b"color") == [b"blue"]
    assert _value(out, b"host") == [b"shop.example"]
    assert _value(out, b"x-forwarded-for") == [b"203.0.113.1, 203.0.113.2, 127.0.0.5"]
    assert _value(out, b"x-forwarded-proto") == [b"http"]
    assert _value(out, b"x-forwarded-host") == [b"shop.example"]
    assert _value(out, b"x-request-id") == [b"proxy-id"]


def test_request_without_host_or_address() -> None:
    """If there is no Host and no client IP, then no X-Forwarded-Host or -For is invented."""
    out = for_backend([(b"Accept", [b"*/*"])], b"green", None, b"https", b"id-1")
    assert _value(out, b"x-forwarded-host") is None
    assert _value(out, b"x-forwarded-for") is None
    assert _value(out, b"x-forwarded-proto") == [b"https"]
    assert _value(out, b"color") == [b"green"]


def test_response_keeps_repeated_headers() -> None:
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
    assert out == [(b"Set-Cookie", [b"a=1", b"b=2"]), (b"Content-Encoding", [b"gzip"])]


def test_response_head_content_length_passes() -> None:
    """
    If a HEAD response carries Content-Length (Agent keeps it only there),
    then it passes, describing the resource.
    """
    assert for_client([(b"Content-Length", [b"12"])]) == [(b"Content-Length", [b"12"])]


@pytest.mark.parametrize(
    "sent, expected",
    [
        (None, b"generated"),
        ([b"abc-123"], b"abc-123"),
        ([b"x" * 128], b"x" * 128),
        ([b"x" * 129], b"generated"),
        ([b""], b"generated"),
        ([b"has space"], b"generated"),
        ([b"caf\xc3\xa9"], b"generated"),
        ([b"a", b"b"], b"generated"),
    ],
)
def test_request_id(sent: list[bytes] | None, expected: bytes) -> None:
    """If the client sends one X-Request-Id of 1 to 128 visible ASCII characters, then it is the id; else one is generated."""
    assert request_id(sent, lambda: b"generated") == expected


def test_new_request_ids_are_unique_hex() -> None:
    """If ids are generated, then each is 32 hex digits and none repeats."""
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
