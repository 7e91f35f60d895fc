"""Table tests for reading the configuration from the environment and command line."""

from __future__ import annotations

from ipaddress import ip_network

from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._config import (
    KNOWN_VARIABLES,
    ConfigError,
    ConfigProblem,
    parse_backend_url,
    parse_config,
    parse_weight,
)
from sillyproxy._sticky import StickyMode

from .support import TableTests, rows


class BackendURLTests(TableTests):
    @rows(
        ("http://myapp-v1:8080", b"http://myapp-v1:8080", b""),
        ("http://myapp-v2:8080/", b"http://myapp-v2:8080", b"/"),
        ("https://example.com/prefix/", b"https://example.com", b"/prefix/"),
        ("http://h:1/a%2Fb", b"http://h:1", b"/a%2Fb"),
        ("http://[::1]:8080/x", b"http://[::1]:8080", b"/x"),
        ("http://127.0.0.1", b"http://127.0.0.1", b""),
        ("HTTP://Host.Example", b"http://Host.Example", b""),
        ("http://tasks.myapp_v1:80", b"http://tasks.myapp_v1:80", b""),
    )
    def test_backend_url_accepted(self, url: str, origin: bytes, base_path: bytes) -> None:
        """If a backend URL is well formed, then its origin and raw base path come back."""
        parsed = parse_backend_url(url)
        self.assertEqual((parsed.origin, parsed.base_path), (origin, base_path))

    @rows(
        ("ftp://h", "scheme must be http or https"),
        ("myapp-v1:8080", "scheme must be http or https"),
        ("http://", "host is missing"),
        ("http:///path", "host is missing"),
        ("http://user:pw@h", "userinfo (user:password@) is not allowed"),
        ("http://h/?q=1", "a query is not allowed"),
        ("http://h/?", "a query is not allowed"),
        ("http://h/#top", "a fragment is not allowed"),
        ("http://h:99999", "port must be a number from 1 to 65535"),
        ("http://h:0", "port must be a number from 1 to 65535"),
        ("http://h:http", "port must be a number from 1 to 65535"),
        ("http://h /x", "contains whitespace or control characters"),
        ("http://h/\x00", "contains whitespace or control characters"),
        ("http://bücher.example", "must be ASCII (percent-encode the path, use punycode hosts)"),
        ("http://h!x", "host is not a valid host name"),
        ("http://[::zz]", "host is not a valid IPv6 address"),
    )
    def test_backend_url_refused(self, url: str, reason: str) -> None:
        """If a backend URL cannot name a backend, then the reason says why."""
        caught = self.assertRaises(ValueError, parse_backend_url, url)
        self.assertEqual(str(caught), reason)


class WeightTests(TableTests):
    @rows(("0", 0), ("1", 1), ("4", 4), (" 7 ", 7), ("1000000", 1_000_000), ("007", 7))
    def test_weight_accepted(self, text: str, weight: int) -> None:
        """If a weight is a whole number in range, then it is that number."""
        self.assertEqual(parse_weight(text), weight)

    @rows(
        ("abc", "not an integer"),
        ("-1", "not an integer"),
        ("+1", "not an integer"),
        ("1.5", "not an integer"),
        ("1e3", "not an integer"),
        ("1_000", "not an integer"),
        ("", "not an integer"),
        ("1000001", "must be from 0 to 1000000"),
        ("99999999999999999999", "must be from 0 to 1000000"),
    )
    def test_weight_refused(self, text: str, reason: str) -> None:
        """If a weight is not a whole number from 0 to 1,000,000, then it is refused."""
        caught = self.assertRaises(ValueError, parse_weight, text)
        self.assertEqual(str(caught), reason)


class ColourTests(SynchronousTestCase):
    def test_walkthrough_canary(self) -> None:
        """If BLUE and GREEN are set with weights 4 and 1, then both are served in that split."""
        config = parse_config(
            {
                "BLUE": "http://myapp-v1:8080",
                "GREEN": "http://myapp-v2:8080/",
                "BLUE_WEIGHT": "4",
                "GREEN_WEIGHT": "1",
            }
        )
        self.assertEqual(
            [(b.color, b.url, b.weight) for b in config.backends],
            [("blue", "http://myapp-v1:8080", 4), ("green", "http://myapp-v2:8080/", 1)],
        )
        self.assertEqual(config.unserved, ())
        self.assertEqual(config.total_weight, 5)
        self.assertEqual(config.listen, ("tcp:8080",))

    def test_unset_color_is_not_served(self) -> None:
        """If GREEN is unset or empty, then green is listed as unserved, not an error."""
        for environ in ({"BLUE": "http://a"}, {"BLUE": "http://a", "GREEN": ""}):
            config = parse_config(environ)
            self.assertEqual([b.color for b in config.backends], ["blue"], environ)
            self.assertEqual(config.unserved, ("green",), environ)

    def test_extra_colors_from_arguments_and_env(self) -> None:
        """If colours come from arguments and SILLYPROXY_COLORS, then each is read once, case-insensitively."""
        config = parse_config(
            {
                "SILLYPROXY_COLORS": "Red, canary,,BLUE",
                "RED": "http://r",
                "CANARY": "http://c",
                "CANARY_WEIGHT": "0",
                "PURPLE": "http://p",
            },
            arguments=["purple", "RED"],
        )
        self.assertEqual(
            [(b.color, b.weight) for b in config.backends],
            [("purple", 1), ("red", 1), ("canary", 0)],
        )
        self.assertEqual(config.unserved, ("blue", "green"))

    def test_listen_precedence(self) -> None:
        """If --listen is given it wins over SILLYPROXY_LISTEN, which wins over tcp:8080."""
        environ = {"SILLYPROXY_LISTEN": "tcp:9000"}
        self.assertEqual(parse_config(environ).listen, ("tcp:9000",))
        self.assertEqual(parse_config(environ, listen=["unix:/tmp/s"]).listen, ("unix:/tmp/s",))
        self.assertEqual(parse_config({}).listen, ("tcp:8080",))

    def test_several_listeners_from_the_variable(self) -> None:
        """If SILLYPROXY_LISTEN holds several descriptions separated by spaces, then the proxy listens on each, in order."""
        config = parse_config(
            {"SILLYPROXY_LISTEN": " tcp:8080 \tssl:8443:privateKey=key.pem:certKey=cert.pem\n unix:/tmp/s "}
        )
        self.assertEqual(
            config.listen, ("tcp:8080", "ssl:8443:privateKey=key.pem:certKey=cert.pem", "unix:/tmp/s")
        )

    def test_several_listeners_from_repeated_options(self) -> None:
        """If --listen is repeated, then every one is used, and SILLYPROXY_LISTEN is ignored."""
        config = parse_config({"SILLYPROXY_LISTEN": "tcp:9000"}, listen=["tcp:8080", "tcp:8081"])
        self.assertEqual(config.listen, ("tcp:8080", "tcp:8081"))

    def test_one_option_is_one_description(self) -> None:
        """If --listen is given as a plain string, then it is one description, not split (a UNIX socket path may hold a space)."""
        self.assertEqual(parse_config({}, listen="unix:/tmp/a b").listen, ("unix:/tmp/a b",))

    def test_each_listener_is_checked(self) -> None:
        """If several listeners are given, then each is checked as a server endpoint, and the admin listener too."""
        checked: list[str] = []
        parse_config(
            {"SILLYPROXY_LISTEN": "tcp:1 tcp:2", "SILLYPROXY_ADMIN_LISTEN": "tcp:3"},
            check_listen=checked.append,
        )
        self.assertEqual(checked, ["tcp:1", "tcp:2", "tcp:3"])

    def test_problem_without_value(self) -> None:
        """If a problem has no value, then its message names only the variable."""
        self.assertEqual(str(ConfigProblem("X", None, "missing")), "X: missing")

    def test_health_path(self) -> None:
        """If C_HEALTH is set, then the colour carries its health-check path; without C it is an error."""
        config = parse_config({"BLUE": "http://b", "BLUE_HEALTH": "/healthz"})
        self.assertEqual(config.backends[0].health_path, "/healthz")
        caught = self.assertRaises(ConfigError, parse_config, {"GREEN_HEALTH": "/healthz"})
        self.assertEqual(str(caught), "GREEN_HEALTH='/healthz': set, but GREEN (the backend URL) is not")


def _check_listen(description: str) -> None:
    if description.startswith("bogus"):
        raise ValueError("unknown")


class ProblemTests(TableTests):
    @rows(
        (
            {"GREEN_WEIGHT": "abc", "GREEN": "http://g"},
            [],
            None,
            ["GREEN_WEIGHT='abc': not an integer"],
        ),
        (
            {"BLUE_WEIGHT": "1"},
            [],
            None,
            ["BLUE_WEIGHT='1': set, but BLUE (the backend URL) is not"],
        ),
        (
            {"BLUE": "http://b", "BLUE_WEIGHT": "-3", "GREEN": "gopher://g"},
            [],
            None,
            [
                "BLUE_WEIGHT='-3': not an integer",
                "GREEN='gopher://g': scheme must be http or https",
            ],
        ),
        (
            {"BLUE_WEIGHT": "2000000"},
            [],
            None,
            ["BLUE_WEIGHT='2000000': must be from 0 to 1000000"],
        ),
        (
            {},
            ["red-ish"],
            None,
            ["COLOR argument='red-ish': a colour name is a letter followed by letters, digits or _"],
        ),
        (
            {"SILLYPROXY_COLORS": "ok,9lives"},
            [],
            None,
            ["SILLYPROXY_COLORS='9lives': a colour name is a letter followed by letters, digits or _"],
        ),
        (
            {},
            ["blue_weight"],
            None,
            ["COLOR argument='blue_weight': a colour name may not end with _WEIGHT"],
        ),
        (
            {},
            ["sillyproxy_listen"],
            None,
            ["COLOR argument='sillyproxy_listen': a colour name may not start with SILLYPROXY"],
        ),
        (
            {"SILLYPROXY_LISTEN": "bogus:1"},
            [],
            None,
            ["SILLYPROXY_LISTEN='bogus:1': not a server endpoint (unknown)"],
        ),
        (
            {},
            [],
            "bogus:1",
            ["--listen='bogus:1': not a server endpoint (unknown)"],
        ),
        (
            {"SILLYPROXY_LISTEN": "tcp:1 bogus:2 tcp:3 bogus:4"},
            [],
            None,
            [
                "SILLYPROXY_LISTEN='bogus:2': not a server endpoint (unknown)",
                "SILLYPROXY_LISTEN='bogus:4': not a server endpoint (unknown)",
            ],
        ),
        (
            {"SILLYPROXY_LISTEN": "bogus:9"},
            [],
            ["tcp:1", "bogus:2"],
            ["--listen='bogus:2': not a server endpoint (unknown)"],
        ),
        (
            {"SILLYPROXY_LISTEN": "tcp:1 tcp:2 tcp:1"},
            [],
            None,
            ["SILLYPROXY_LISTEN='tcp:1': listed more than once"],
        ),
        (
            {},
            [],
            ["tcp:1", "tcp:1"],
            ["--listen='tcp:1': listed more than once"],
        ),
    )
    def test_every_problem_is_named(
        self,
        environ: dict[str, str],
        arguments: list[str],
        listen: str | list[str] | None,
        problems: list[str],
    ) -> None:
        """If settings are bad, then one error lists each bad variable with its value and reason."""
        caught = self.assertRaises(ConfigError, parse_config, environ, arguments, listen, _check_listen)
        self.assertEqual([str(p) for p in caught.problems], problems)
        self.assertEqual(str(caught), "\n".join(problems))

    @rows(
        ({}, "max_body", 1024**3),
        ({"SILLYPROXY_MAX_BODY": "0"}, "max_body", 0),
        ({"SILLYPROXY_MAX_BODY": "1048576"}, "max_body", 1048576),
        ({"SILLYPROXY_MAX_BODY": "512K"}, "max_body", 512 * 1024),
        ({"SILLYPROXY_MAX_BODY": "2g"}, "max_body", 2 * 1024**3),
        ({"SILLYPROXY_MAX_BODY": "10MiB"}, "max_body", 10 * 1024**2),
        ({}, "dns_refresh", 5.0),
        ({"SILLYPROXY_DNS_REFRESH": "0.5"}, "dns_refresh", 0.5),
        ({}, "backend_keepalive", 100),
        ({"SILLYPROXY_BACKEND_KEEPALIVE": "0"}, "backend_keepalive", 0),
        ({"SILLYPROXY_CONNECT_TIMEOUT": "2"}, "connect_timeout", 2.0),
        ({"SILLYPROXY_DRAIN_TIMEOUT": ""}, "drain_timeout", 8.0),
        ({"SILLYPROXY_ACCESS_LOG": "JSON"}, "access_log", "json"),
        ({"SILLYPROXY_ADMIN_LISTEN": "none"}, "admin_listen", None),
        ({"SILLYPROXY_ADMIN_LISTEN": " None "}, "admin_listen", None),
        ({"SILLYPROXY_ADMIN_LISTEN": "tcp:9000"}, "admin_listen", "tcp:9000"),
        ({}, "fast_transport", True),
        ({"SILLYPROXY_FAST_TRANSPORT": "0"}, "fast_transport", False),
        ({"SILLYPROXY_FAST_TRANSPORT": "off"}, "fast_transport", False),
        ({"SILLYPROXY_FAST_TRANSPORT": "1"}, "fast_transport", True),
        ({"SILLYPROXY_FAST_TRANSPORT": "   "}, "fast_transport", True),
        ({}, "body_timeout", 60.0),
        ({"SILLYPROXY_BODY_TIMEOUT": "2.5"}, "body_timeout", 2.5),
        ({}, "send_timeout", 60.0),
        ({"SILLYPROXY_SEND_TIMEOUT": "120"}, "send_timeout", 120.0),
        ({}, "trusted_proxies", ()),
        ({"SILLYPROXY_TRUSTED_PROXIES": " "}, "trusted_proxies", ()),
        ({"SILLYPROXY_TRUSTED_PROXIES": "10.0.0.0/8"}, "trusted_proxies", (ip_network("10.0.0.0/8"),)),
        (
            {"SILLYPROXY_TRUSTED_PROXIES": " 10.0.0.1 ,2001:db8::/32,\t::1"},
            "trusted_proxies",
            (ip_network("10.0.0.1/32"), ip_network("2001:db8::/32"), ip_network("::1/128")),
        ),
        ({"SILLYPROXY_TRUSTED_PROXIES": "0.0.0.0/0"}, "trusted_proxies", (ip_network("0.0.0.0/0"),)),
        ({}, "tunnel_idle_timeout", 3600.0),
        ({"SILLYPROXY_TUNNEL_IDLE_TIMEOUT": "90"}, "tunnel_idle_timeout", 90.0),
        ({"SILLYPROXY_TUNNEL_IDLE_TIMEOUT": " 0.5 "}, "tunnel_idle_timeout", 0.5),
        ({"SILLYPROXY_TUNNEL_IDLE_TIMEOUT": "  "}, "tunnel_idle_timeout", 3600.0),
        ({}, "sticky", StickyMode("off")),
        ({"SILLYPROXY_STICKY": "cookie"}, "sticky", StickyMode("cookie")),
        ({"SILLYPROXY_STICKY": " IP "}, "sticky", StickyMode("ip")),
        ({"SILLYPROXY_STICKY": "off"}, "sticky", StickyMode("off")),
        ({"SILLYPROXY_STICKY": "header:X-User-Id"}, "sticky", StickyMode("header", b"x-user-id")),
        ({"SILLYPROXY_STICKY": "\t"}, "sticky", StickyMode("off")),
        ({}, "sticky_cookie", b"sillyproxy"),
        ({"SILLYPROXY_STICKY_COOKIE": "canary_id"}, "sticky_cookie", b"canary_id"),
        ({"SILLYPROXY_STICKY_COOKIE": " Canary-ID "}, "sticky_cookie", b"Canary-ID"),
        ({"SILLYPROXY_STICKY_COOKIE": " "}, "sticky_cookie", b"sillyproxy"),
        ({}, "sticky_secret", None),
        ({"SILLYPROXY_STICKY_SECRET": "s3cret"}, "sticky_secret", b"s3cret"),
        ({"SILLYPROXY_STICKY_SECRET": " s3cret\n"}, "sticky_secret", b"s3cret"),
        ({"SILLYPROXY_STICKY_SECRET": "  "}, "sticky_secret", None),
        ({}, "sticky_max_age", 2592000),
        ({"SILLYPROXY_STICKY_MAX_AGE": "1"}, "sticky_max_age", 1),
        ({"SILLYPROXY_STICKY_MAX_AGE": " 3600 "}, "sticky_max_age", 3600),
        ({"SILLYPROXY_STICKY_MAX_AGE": "2147483647"}, "sticky_max_age", 2147483647),
        ({"SILLYPROXY_STICKY_MAX_AGE": ""}, "sticky_max_age", 2592000),
        ({}, "override_secret", None),
        ({"SILLYPROXY_OVERRIDE_SECRET": "tester pass key"}, "override_secret", b"tester pass key"),
        ({"SILLYPROXY_OVERRIDE_SECRET": "pässword\n"}, "override_secret", "pässword".encode()),
        ({"SILLYPROXY_OVERRIDE_SECRET": "\n"}, "override_secret", None),
    )
    def test_tunables(self, environ: dict[str, str], attribute: str, value: object) -> None:
        """If a SILLYPROXY_* setting is given (or not), then the proxy uses it (or the default)."""
        self.assertEqual(getattr(parse_config(environ).tunables, attribute), value)

    @rows(
        ("SILLYPROXY_MAX_BODY", "lots", "not a size (bytes, or a number with K, M or G)"),
        ("SILLYPROXY_MAX_BODY", "-1", "not a size (bytes, or a number with K, M or G)"),
        ("SILLYPROXY_MAX_BODY", "2000G", "must be at most 1024G"),
        ("SILLYPROXY_DNS_REFRESH", "soon", "not a number of seconds"),
        ("SILLYPROXY_DNS_REFRESH", "0", "must be more than 0 and at most 86400 seconds"),
        ("SILLYPROXY_CONNECT_TIMEOUT", "nan", "must be more than 0 and at most 86400 seconds"),
        ("SILLYPROXY_IDLE_TIMEOUT", "inf", "must be more than 0 and at most 86400 seconds"),
        ("SILLYPROXY_BACKEND_KEEPALIVE", "-1", "must be a whole number from 0 to 100000"),
        ("SILLYPROXY_BACKEND_KEEPALIVE", "9" * 5000, "must be a whole number from 0 to 100000"),
        ("SILLYPROXY_ACCESS_LOG", "xml", "must be text, json or off"),
        ("SILLYPROXY_FAST_TRANSPORT", "maybe", "must be 1 or 0"),
        ("BLUE_HEALTH", "healthz", "must be an ASCII path starting with /"),
        ("SILLYPROXY_BODY_TIMEOUT", "0", "must be more than 0 and at most 86400 seconds"),
        ("SILLYPROXY_BODY_TIMEOUT", "1m", "not a number of seconds"),
        ("SILLYPROXY_SEND_TIMEOUT", "0", "must be more than 0 and at most 86400 seconds"),
        ("SILLYPROXY_SEND_TIMEOUT", "-5", "must be more than 0 and at most 86400 seconds"),
        ("SILLYPROXY_TUNNEL_IDLE_TIMEOUT", "0", "must be more than 0 and at most 86400 seconds"),
        ("SILLYPROXY_TUNNEL_IDLE_TIMEOUT", "1h", "not a number of seconds"),
        ("SILLYPROXY_TUNNEL_IDLE_TIMEOUT", "90000", "must be more than 0 and at most 86400 seconds"),
        (
            "SILLYPROXY_TRUSTED_PROXIES",
            "10.0.0.1/8",
            "'10.0.0.1/8' has host bits set; did you mean 10.0.0.0/8?",
        ),
        (
            "SILLYPROXY_TRUSTED_PROXIES",
            "2001:db8::1/32",
            "'2001:db8::1/32' has host bits set; did you mean 2001:db8::/32?",
        ),
        ("SILLYPROXY_TRUSTED_PROXIES", "10.0.0.0/8,", "an empty item (two commas, or one at an end)"),
        ("SILLYPROXY_TRUSTED_PROXIES", "10.0.0.0/8, ,::1", "an empty item (two commas, or one at an end)"),
        ("SILLYPROXY_TRUSTED_PROXIES", "localhost", "'localhost' is not an IP address or CIDR network"),
        ("SILLYPROXY_TRUSTED_PROXIES", "10.0.0.0/33", "'10.0.0.0/33' is not an IP address or CIDR network"),
        ("SILLYPROXY_TRUSTED_PROXIES", "10.0.0.0 /8", "'10.0.0.0 /8' is not an IP address or CIDR network"),
        ("SILLYPROXY_TRUSTED_PROXIES", "fe80::%eth0/64", "'fe80::%eth0/64' has a zone (%); zones are not allowed"),
        (
            "SILLYPROXY_TRUSTED_PROXIES",
            "nope, 10.0.0.1/8",
            "'nope' is not an IP address or CIDR network; "
            "'10.0.0.1/8' has host bits set; did you mean 10.0.0.0/8?",
        ),
        ("SILLYPROXY_STICKY", "cookies", "must be off, cookie, header:NAME or ip"),
        ("SILLYPROXY_STICKY", "on", "must be off, cookie, header:NAME or ip"),
        ("SILLYPROXY_STICKY", "header:", "header needs a header name, as in header:X-User-Id"),
        (
            "SILLYPROXY_STICKY",
            "header:bad name",
            "'bad name' is not a header name (letters, digits and !#$%&'*+-.^_`|~)",
        ),
        (
            "SILLYPROXY_STICKY_COOKIE",
            "my cookie",
            "not a cookie name (letters, digits and !#$%&'*+-.^_`|~)",
        ),
        (
            "SILLYPROXY_STICKY_COOKIE",
            "a=b",
            "not a cookie name (letters, digits and !#$%&'*+-.^_`|~)",
        ),
        (
            "SILLYPROXY_STICKY_COOKIE",
            "sillyproxy;",
            "not a cookie name (letters, digits and !#$%&'*+-.^_`|~)",
        ),
        (
            "SILLYPROXY_STICKY_COOKIE",
            "küche",
            "not a cookie name (letters, digits and !#$%&'*+-.^_`|~)",
        ),
        (
            "SILLYPROXY_STICKY_COOKIE",
            "sillyproxy-color",
            "is the override pass's cookie, which is taken off every request",
        ),
        ("SILLYPROXY_STICKY_MAX_AGE", "-1", "must be a whole number of seconds from 1 to 2147483647"),
        # 0 would make every browser drop the cookie at once.
        ("SILLYPROXY_STICKY_MAX_AGE", "0", "must be a whole number of seconds from 1 to 2147483647"),
        ("SILLYPROXY_STICKY_MAX_AGE", "1.5", "must be a whole number of seconds from 1 to 2147483647"),
        ("SILLYPROXY_STICKY_MAX_AGE", "30d", "must be a whole number of seconds from 1 to 2147483647"),
        ("SILLYPROXY_STICKY_MAX_AGE", "2147483648", "must be a whole number of seconds from 1 to 2147483647"),
        ("SILLYPROXY_STICKY_MAX_AGE", "9" * 5000, "must be a whole number of seconds from 1 to 2147483647"),
    )
    def test_tunables_refused(self, variable: str, text: str, reason: str) -> None:
        """If a SILLYPROXY_* setting is malformed, then the error names it, its value and the reason."""
        caught = self.assertRaises(ConfigError, parse_config, {"BLUE": "http://b", variable: text})
        self.assertEqual([str(p) for p in caught.problems], [f"{variable}={text!r}: {reason}"])

    def test_new_variables_are_known(self) -> None:
        """If a deployment file sets the body, send or trusted-proxy variables, then they count as known."""
        self.assertLessEqual(
            {
                "SILLYPROXY_BODY_TIMEOUT",
                "SILLYPROXY_SEND_TIMEOUT",
                "SILLYPROXY_TRUSTED_PROXIES",
                "SILLYPROXY_TUNNEL_IDLE_TIMEOUT",
                "SILLYPROXY_STICKY",
                "SILLYPROXY_STICKY_COOKIE",
                "SILLYPROXY_STICKY_SECRET",
                "SILLYPROXY_STICKY_MAX_AGE",
                "SILLYPROXY_OVERRIDE_SECRET",
            },
            KNOWN_VARIABLES,
        )

    @rows(
        ({"BLUE": "http://b", "BLUE_WEIGHT": "  "},),
        ({"BLUE": "http://b", "BLUE_HEALTH": "\t"},),
        ({"BLUE": "http://b", "GREEN": "   ", "GREEN_WEIGHT": " "},),
        ({"BLUE": "http://b", "SILLYPROXY_LISTEN": "  ", "SILLYPROXY_MAX_BODY": " "},),
        (
            {
                "BLUE": "http://b",
                "SILLYPROXY_STICKY": " ",
                "SILLYPROXY_STICKY_COOKIE": "\t",
                "SILLYPROXY_STICKY_SECRET": " \n",
                "SILLYPROXY_STICKY_MAX_AGE": "  ",
                "SILLYPROXY_OVERRIDE_SECRET": " ",
            },
        ),
    )
    def test_whitespace_only_is_unset(self, environ: dict[str, str]) -> None:
        """If any variable holds only whitespace, then it counts as unset, the same for every variable."""
        config = parse_config(environ)
        self.assertEqual([(b.color, b.weight, b.health_path) for b in config.backends], [("blue", 1, None)])
        self.assertEqual(config.unserved, ("green",))
        self.assertEqual(config.listen, ("tcp:8080",))
        self.assertEqual(config.tunables.max_body, 1024**3)
        self.assertEqual(
            (
                config.tunables.sticky,
                config.tunables.sticky_cookie,
                config.tunables.sticky_secret,
                config.tunables.sticky_max_age,
                config.tunables.override_secret,
            ),
            (StickyMode("off"), b"sillyproxy", None, 2592000, None),
        )


_G = {"BLUE": "http://b", "GREEN": "http://g"}
_RAMPED = {**_G, "GREEN_RAMP": "1,5,25", "GREEN_RAMP_START": "2026-12-01T10:00:00Z"}


class CanaryConfigTests(TableTests):
    def test_ramp(self) -> None:
        """If a colour ramps, then it has the ramp, the default 5-minute step and no weight of its own."""
        green = parse_config(_RAMPED).backends[1]
        assert green.ramp is not None
        self.assertEqual(
            (green.weight, green.ramp.percents, green.ramp.start, green.ramp.step),
            (0, (1.0, 5.0, 25.0), 1796119200.0, 300.0),
        )

    def test_rollback_and_mirror(self) -> None:
        """If a colour is armed for rollback and mirrored, then both settings are kept, per colour."""
        config = parse_config(
            {**_G, "GREEN_ROLLBACK_ERROR_RATE": "0.05", "GREEN_MIRROR": "12.5", "GREEN_WEIGHT": "0"}
        )
        blue, green = config.backends
        self.assertEqual((blue.rollback_error_rate, blue.mirror_percent), (None, None))
        self.assertEqual((green.rollback_error_rate, green.mirror_percent), (0.05, 12.5))

    @rows(
        (
            {**_RAMPED, "GREEN_WEIGHT": "1"},
            ["GREEN_RAMP='1,5,25': a ramping colour's share comes from its ramp: unset GREEN_WEIGHT"],
        ),
        (
            {**_RAMPED, "BLUE_RAMP": "10", "BLUE_RAMP_START": "2026-12-01T10:00:00Z"},
            ["GREEN_RAMP='1,5,25': only one colour may ramp at a time (BLUE_RAMP is set too)"],
        ),
        (
            {**_G, "GREEN_RAMP": "5,1", "GREEN_RAMP_START": "2026-12-01T10:00:00Z"},
            ["GREEN_RAMP='5,1': not strictly increasing (5 then 1)"],
        ),
        (
            {**_G, "GREEN_RAMP": "50,101", "GREEN_RAMP_START": "2026-12-01T10:00:00Z"},
            ["GREEN_RAMP='50,101': 101 is not from 0 to 100"],
        ),
        ({**_G, "GREEN_RAMP": "5"}, ["GREEN_RAMP_START: required with GREEN_RAMP"]),
        (
            {**_G, "GREEN_RAMP": "5", "GREEN_RAMP_START": "2026-12-01T10:00:00"},
            [
                "GREEN_RAMP_START='2026-12-01T10:00:00': not an RFC 3339 time with a zone, "
                "such as 2026-12-01T10:00:00Z"
            ],
        ),
        (
            {**_RAMPED, "GREEN_RAMP_STEP": "5 days"},
            [
                "GREEN_RAMP_STEP='5 days': not a duration (a number with an optional unit s, m or h: "
                "90s, 5m, 1.5h)"
            ],
        ),
        ({**_G, "GREEN_RAMP_STEP": "5m"}, ["GREEN_RAMP_STEP='5m': set, but GREEN_RAMP is not"]),
        (
            {"BLUE": "http://b", "GREEN_RAMP": "5", "GREEN_MIRROR": "5"},
            [
                "GREEN_RAMP='5': set, but GREEN (the backend URL) is not",
                "GREEN_MIRROR='5': set, but GREEN (the backend URL) is not",
            ],
        ),
        (
            {**_RAMPED, "BLUE_WEIGHT": "0"},
            [
                "GREEN_RAMP='1,5,25': no other colour has a weight above 0 to take the rest "
                "of the traffic"
            ],
        ),
        ({**_G, "GREEN_ROLLBACK_ERROR_RATE": "5%"}, ["GREEN_ROLLBACK_ERROR_RATE='5%': not a number"]),
        (
            {**_G, "GREEN_ROLLBACK_ERROR_RATE": "1.5"},
            ["GREEN_ROLLBACK_ERROR_RATE='1.5': must be a fraction from 0 to 1"],
        ),
        (
            {**_G, "GREEN_ROLLBACK_ERROR_RATE": "nan"},
            ["GREEN_ROLLBACK_ERROR_RATE='nan': must be a fraction from 0 to 1"],
        ),
        ({**_G, "GREEN_MIRROR": "101"}, ["GREEN_MIRROR='101': must be a percentage from 0 to 100"]),
        ({**_G, "GREEN_MIRROR": "-1"}, ["GREEN_MIRROR='-1': must be a percentage from 0 to 100"]),
        (
            {**_G, "SILLYPROXY_ANALYSIS_MIN_REQUESTS": "0"},
            ["SILLYPROXY_ANALYSIS_MIN_REQUESTS='0': must be a whole number from 1 to 100000"],
        ),
        (
            {**_G, "SILLYPROXY_ANALYSIS_WINDOW": "0.5"},
            ["SILLYPROXY_ANALYSIS_WINDOW='0.5': must be from 1 to 86400 seconds"],
        ),
        (
            {**_G, "SILLYPROXY_ANALYSIS_WINDOW": "1e-300"},
            ["SILLYPROXY_ANALYSIS_WINDOW='1e-300': must be from 1 to 86400 seconds"],
        ),
        (
            {**_G, "SILLYPROXY_ROLLBACK_HEALTHZ": "maybe"},
            ["SILLYPROXY_ROLLBACK_HEALTHZ='maybe': must be 1 or 0"],
        ),
        (
            {**_G, "SILLYPROXY_MIRROR_MAX_INFLIGHT": "none"},
            ["SILLYPROXY_MIRROR_MAX_INFLIGHT='none': must be a whole number from 1 to 100000"],
        ),
    )
    def test_canary_problems(self, environ: dict[str, str], problems: list[str]) -> None:
        """If a ramp, rollback or mirror setting is bad, then the error names the variable and why."""
        caught = self.assertRaises(ConfigError, parse_config, environ)
        self.assertEqual([str(p) for p in caught.problems], problems)

    @rows(
        ({}, (30.0, 20, False, 100)),
        (
            {
                "SILLYPROXY_ANALYSIS_WINDOW": "10",
                "SILLYPROXY_ANALYSIS_MIN_REQUESTS": "5",
                "SILLYPROXY_ROLLBACK_HEALTHZ": "1",
                "SILLYPROXY_MIRROR_MAX_INFLIGHT": "7",
            },
            (10.0, 5, True, 7),
        ),
    )
    def test_canary_tunables(self, environ: dict[str, str], expected: tuple[object, ...]) -> None:
        """If the analysis and mirror settings are given (or not), then they (or the defaults) are used."""
        tunables = parse_config({**_G, **environ}).tunables
        self.assertEqual(
            (
                tunables.analysis_window,
                tunables.analysis_min_requests,
                tunables.rollback_healthz,
                tunables.mirror_max_inflight,
            ),
            expected,
        )

    @rows(("green_ramp",), ("x_ramp_start",), ("x_mirror",), ("x_rollback_error_rate",))
    def test_colour_names_that_would_clash(self, name: str) -> None:
        """If a colour's name ends like a colour setting, then it is refused."""
        caught = self.assertRaises(ConfigError, parse_config, {}, [name])
        self.assertIn("a colour name may not end with", str(caught))
