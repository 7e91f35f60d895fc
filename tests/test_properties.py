"""Property tests: any environment gives a configuration or a clean error; no hop-by-hop header survives."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._config import ConfigError, ProxyConfig, parse_config
from sillyproxy._headers import HOP_BY_HOP, for_backend, for_client

NAMES = st.sampled_from(
    ["BLUE", "GREEN", "RED", "BLUE_WEIGHT", "GREEN_WEIGHT", "RED_WEIGHT", "BLUE_HEALTH",
     "SILLYPROXY_COLORS", "SILLYPROXY_LISTEN", "SILLYPROXY_MAX_BODY", "SILLYPROXY_DNS_REFRESH",
     "SILLYPROXY_BACKEND_KEEPALIVE", "SILLYPROXY_ACCESS_LOG", "SILLYPROXY_DRAIN_TIMEOUT",
     "SILLYPROXY_BODY_TIMEOUT", "SILLYPROXY_SEND_TIMEOUT", "SILLYPROXY_TRUSTED_PROXIES"]
)
VALUES = st.one_of(
    st.text(max_size=40),
    st.integers(-5, 2_000_000).map(str),
    st.sampled_from(["http://a:1", "https://b/x/", "http://[::1]:80", "ftp://c", "http://", "0", "1G",
                     "red,blue", "json", "tcp:8080", "/healthz", "1e9", "nan", "10.0.0.0/8, ::1",
                     "10.0.0.1/8", ",", "fe80::%eth0"]),
)


class ConfigPropertyTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(st.dictionaries(NAMES, VALUES, max_size=8), st.lists(st.text(max_size=8), max_size=3))
    def test_any_environment_gives_config_or_clean_error(self, environ: dict[str, str], arguments: list[str]) -> None:
        """If the environment holds anything at all, then parsing gives a config or a ConfigError naming each problem."""
        try:
            config = parse_config(environ, arguments)
        except ConfigError as e:
            assert e.problems
            for problem in e.problems:
                assert problem.reason and problem.variable
                assert "\n" not in problem.reason
            return
        assert isinstance(config, ProxyConfig)
        for backend in config.backends:
            assert 0 <= backend.weight <= 1_000_000
            assert backend.origin.startswith((b"http://", b"https://"))


TOKEN = st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=12)
HEADER_NAMES = st.one_of(
    TOKEN,
    st.sampled_from(sorted(n.decode() for n in HOP_BY_HOP) + ["Content-Length", "Color", "Host"]),
).map(lambda n: n.encode())
HEADERS = st.lists(
    st.tuples(
        HEADER_NAMES.map(lambda n: n.title() if n[:1].islower() else n),
        st.lists(st.binary(min_size=0, max_size=20).filter(lambda v: b"\r" not in v and b"\n" not in v), min_size=1, max_size=3),
    ),
    max_size=10,
    unique_by=lambda pair: pair[0].lower(),
)


def _connection_named(headers: list[tuple[bytes, list[bytes]]]) -> set[bytes]:
    return {
        token.strip().lower()
        for name, values in headers
        if name.lower() == b"connection"
        for value in values
        for token in value.split(b",")
    }


class HeaderPropertyTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(HEADERS)
    def test_no_hop_by_hop_header_survives(self, headers: list[tuple[bytes, list[bytes]]]) -> None:
        """If any headers come in, then neither direction passes a hop-by-hop one or one named by Connection."""
        named = _connection_named(headers)
        to_backend = {n.lower() for n, _ in for_backend(headers, b"blue", b"127.0.0.1", b"http", b"id-1")}
        to_client = {n.lower() for n, _ in for_client(headers)}
        for forbidden in HOP_BY_HOP | named:
            if forbidden in (
                b"color", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-request-id", b"forwarded"
            ):
                continue  # the proxy sets these itself
            if forbidden == b"host":
                continue  # never hop-by-hop, whatever Connection says
            assert forbidden not in to_backend
            assert forbidden not in to_client
        assert b"content-length" not in to_backend
