"""
Table tests for turning a client's request target into the backend's, and
for the checks on a request's target and Host header.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._target import has_dot_segment, join_target, origin_form, valid_host

from .support import TableTests, rows


class OriginFormTests(TableTests):
    @rows(
        (b"/", b"/"),
        (b"/a%2Fb;x?q=1&r=%7E", b"/a%2Fb;x?q=1&r=%7E"),
        (b"//double", b"//double"),
        (b"http://elsewhere/x", b"/x"),
        (b"HTTP://elsewhere/x?y=1", b"/x?y=1"),
        (b"https://elsewhere:8443/x/y", b"/x/y"),
        (b"http://elsewhere", b"/"),
        (b"http://elsewhere?q=1", b"/?q=1"),
        (b"http://elsewhere#frag", b"/"),
        (b"*", None),
        (b"elsewhere:443", None),
        (b"ftp://elsewhere/x", None),
        (b"", None),
    )
    def test_origin_form(self, uri: bytes, expected: bytes | None) -> None:
        """If the target is origin- or absolute-form, then its path and query are kept; otherwise None."""
        self.assertEqual(origin_form(uri), expected)


class JoinTargetTests(TableTests):
    @rows(
        (b"", b"/", b"/"),
        (b"", b"/a?b=1", b"/a?b=1"),
        (b"/", b"/", b"/"),
        (b"/", b"/a", b"/a"),
        (b"/prefix/", b"/a%2Fb;x?q=1&r=%7E", b"/prefix/a%2Fb;x?q=1&r=%7E"),
        (b"/prefix", b"/a%2Fb;x?q=1&r=%7E", b"/prefix/a%2Fb;x?q=1&r=%7E"),
        (b"/prefix", b"/", b"/prefix/"),
        (b"/prefix/", b"/?x=/y", b"/prefix/?x=/y"),
        (b"/prefix", b"/?a?b", b"/prefix/?a?b"),
        (b"/a%20b/", b"/c%20d", b"/a%20b/c%20d"),
        (b"/p/", b"//x", b"/p//x"),
    )
    def test_join_target(self, base: bytes, target: bytes, expected: bytes) -> None:
        """If a target joins a base path, then one slash joins them and no byte is re-encoded."""
        self.assertEqual(join_target(base, target), expected)


class HasDotSegmentTests(TableTests):
    @rows(
        (b"/../admin/secret",),
        (b"/..",),
        (b"/.",),
        (b"/a/.",),
        (b"/a/..",),
        (b"/a/../b",),
        (b"/a/./b",),
        (b"/a/..?x=1",),
        (b"/a/..?",),
        (b"..",),
        # Percent-encoded dots, any case.
        (b"/%2e%2e/admin",),
        (b"/%2E%2E/admin",),
        (b"/%2e./admin",),
        (b"/.%2E/admin",),
        (b"/a/%2E/b",),
        (b"/a/%2e",),
        # Percent-encoded slashes and backslashes, any case, split segments.
        (b"/..%2fadmin",),
        (b"/..%2Fadmin",),
        (b"/a%2f..%2fb",),
        (b"/a/..%5Cb",),
        (b"/a/..%5cb",),
        (b"/%2e%2e%2f%2e%2e%2fetc",),
        # Backslashes split segments.
        (b"/a\\..\\b",),
        (b"/a\\.",),
        (b"\\..",),
        # Path parameters: Tomcat and Jetty take /..;x/ for /../.
        (b"/..;/admin",),
        (b"/a/.;x=1/b",),
        (b"/%2e%2e;x/admin",),
    )
    def test_dot_segment(self, target: bytes) -> None:
        """If the path has a . or .. segment, plain or encoded, then it has one."""
        self.assertTrue(has_dot_segment(target))

    @rows(
        (b"/",),
        (b"",),
        (b"/a/b/c",),
        (b"/a%2fb",),
        (b"/a/b..c",),
        (b"/...",),
        (b"/..../a",),
        (b"/.hidden",),
        (b"/..hidden",),
        (b"/a/b.",),
        (b"/a/b..",),
        (b"/a.b/c.d",),
        (b"/%2e%2e%2e",),
        (b"/a%2eb",),
        (b"/a\\b",),
        (b"/a;..",),
        (b"/a;x=../b",),
        # Dot segments in the query are not the path's.
        (b"/a?x=/../y",),
        (b"/a?..",),
        (b"/?%2e%2e",),
        # A bare or short percent sign decodes to nothing.
        (b"/%2",),
        (b"/..%2",),
        (b"/%2e%2",),
        (b"/%",),
        (b"/a%20b",),
        # Double encoding: only a backend that decodes twice sees a dot.
        (b"/%252e%252e/admin",),
        (b"/..%252fadmin",),
        (b"/..%255cadmin",),
        # Non-standard encodings (IIS %u, overlong UTF-8) are not decoded.
        (b"/%u002e%u002e/admin",),
        (b"/%c0%ae%c0%ae/admin",),
    )
    def test_no_dot_segment(self, target: bytes) -> None:
        """If no segment of the path is . or .., once decoded, then it has none."""
        self.assertFalse(has_dot_segment(target))


class ValidHostTests(TableTests):
    @rows(
        (b"example.com",),
        (b"example.com:8080",),
        (b"EXAMPLE.com:1",),
        (b"example.com.",),
        (b"localhost",),
        (b"a",),
        (b"a-b_c~d",),
        (b"xn--bcher-kva.example",),
        (b"!$&'()*+;=",),
        (b"a%41b",),
        (b"%e2%98%83.example",),
        (b"127.0.0.1",),
        (b"127.0.0.1:80",),
        (b"host:00080",),
        (b"host:65535",),
        (b"host:99999",),
        (b"[::1]",),
        (b"[::1]:8080",),
        (b"[2001:db8::1]",),
        (b"[2001:DB8::1]:443",),
        (b"[::ffff:192.0.2.1]",),
        (b"[1:2:3:4:5:6:7:8]",),
    )
    def test_valid(self, value: bytes) -> None:
        """If the value is a reg-name, IPv4 or bracketed IPv6 host, with an optional numeric port, then it is valid (and stays so when asked again)."""
        self.assertEqual([valid_host(value), valid_host(value)], [True, True])

    @rows(
        (b"",),
        (b":80",),
        (b"a b",),
        (b" example.com",),
        (b"example.com ",),
        (b"example.com\t",),
        (b"example.com/",),
        (b"evil.com/@x",),
        (b"user@example.com",),
        (b"example.com\\x",),
        (b"example.com?",),
        (b"example.com#x",),
        (b"a,b",),
        (b"a\"b",),
        (b"a<b>",),
        (b"a[b]",),
        (b"a\x00b",),
        (b"a\rb",),
        (b"a\nb",),
        (b"a\x7fb",),
        (b"caf\xc3\xa9.example",),
        (b"\xff",),
        (b"a%",),
        (b"a%4",),
        (b"a%zz",),
        (b"a%g1",),
        (b"host:",),
        (b"host:port:extra",),
        (b"host:1:2",),
        (b"host:abc",),
        (b"host:-1",),
        (b"host:+80",),
        (b"host: 80",),
        (b"host:123456",),
        (b"[::1",),
        (b"[::1]x",),
        (b"[::1]:",),
        (b"[::1]:abc",),
        (b"[::1]]",),
        (b"[]",),
        (b"[zzz]",),
        (b"[127.0.0.1]",),
        (b"[::1%eth0]",),
        (b"[fe80::1%25eth0]",),
        (b"[v1.fe80::1]",),
        (b"[ ::1]",),
        (b"::1",),
        (b"::1]",),
        (b"x[::1]",),
        (b"[\xff]",),
    )
    def test_invalid(self, value: bytes) -> None:
        """If the value is anything else, then it is not a valid Host (asked once or again)."""
        self.assertEqual([valid_host(value), valid_host(value)], [False, False])


class RememberedHostTests(SynchronousTestCase):
    def test_many_hosts_stay_bounded(self) -> None:
        """If clients send many different Host values, then the answers remembered stay bounded and each answer is still right."""
        limit = valid_host.cache_info().maxsize
        assert limit is not None
        for i in range(3 * limit):
            self.assertEqual([valid_host(b"h%d.example" % i), valid_host(b"h%d example" % i)], [True, False])
        self.assertLessEqual(valid_host.cache_info().currsize, limit)
