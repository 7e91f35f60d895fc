"""Table tests for turning a client's request target into the backend's."""

from __future__ import annotations

from sillyproxy._target import join_target, origin_form

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
