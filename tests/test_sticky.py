"""
Table tests for sticky routing's pure parts (the rendezvous hash, the key,
the Cookie header) and for tester override passes.

The hash's properties are checked over 10,000 fixed keys, each count within
four binomial standard deviations of what the weights promise: the keys are
fixed, so a result either always passes or never does, and four standard
deviations keep a correct hash from failing by bad luck (p < 1e-4 per count).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import math
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._sticky import (
    DEFAULT_COOKIE,
    DEFAULT_MAX_AGE,
    STICKY_OFF,
    Ranker,
    StickyMode,
    cookie,
    is_token,
    new_key,
    parse_sticky,
    rank,
    set_cookie,
    uniform_log,
    valid_key,
    without_cookies,
)
from sillyproxy.override import PASS_COOKIE, PASS_HEADER, main, make_pass, parse_secret, verify_pass

from .support import TableTests, rows

ROOT = Path(__file__).resolve().parent.parent

KEYS = [b"user-%d" % i for i in range(10_000)]

Weights = Sequence[tuple[str, int]]


def reference_rank(key: bytes, weights: Weights, secret: bytes | None) -> list[str]:
    """The ranking exactly as issue 12 words it, written plainly, to check the fast one against."""
    scored = []
    for colour, weight in weights:
        if weight <= 0:
            continue
        message = colour.lower().encode("ascii") + b"\0" + key
        digest = hmac.new(secret or b"", message, hashlib.sha256).digest()
        u = (int.from_bytes(digest[:8], "big") + 0.5) / 2**64
        scored.append((-weight / math.log(u), colour))
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    return [colour for _, colour in scored]


def assign(weights: Weights, secret: bytes | None = None) -> list[str]:
    """Each of L{KEYS}' best colour, in order."""
    ranker = Ranker(weights, secret)
    return [ranker.rank(key)[0] for key in KEYS]


def tolerance(share: float, n: int = len(KEYS)) -> float:
    """Four binomial standard deviations of a count of C{n} draws at probability C{share}."""
    return 4 * math.sqrt(n * share * (1 - share))


class RankTests(TableTests):
    # Pinned: a change to any of these reshuffles every sticky user when the
    # proxy is upgraded, and replicas of two versions would disagree.
    @rows(
        (b"user-1", (("blue", 4), ("green", 1)), None, ["blue", "green"]),
        (b"user-2", (("blue", 4), ("green", 1)), None, ["green", "blue"]),
        (b"user-2", (("blue", 4), ("green", 1)), b"s3cret", ["blue", "green"]),
        (b"user-11", (("blue", 4), ("green", 1)), b"s3cret", ["green", "blue"]),
        (b"user-1", (("blue", 1), ("green", 1), ("red", 1)), None, ["red", "blue", "green"]),
        (b"user-4", (("blue", 1), ("green", 1), ("red", 1)), b"s3cret", ["green", "red", "blue"]),
        (b"user-2", (("green", 1), ("red", 1), ("blue", 1)), b"s3cret", ["red", "blue", "green"]),
    )
    def test_pinned_vectors(self, key: bytes, weights: Weights, secret: bytes | None, expected: list[str]) -> None:
        """If the same key, weights and secret are ranked, then the order is the one every earlier version gave."""
        self.assertEqual(rank(key, weights, secret), expected)
        self.assertEqual(reference_rank(key, weights, secret), expected)

    @rows(
        ((), []),
        ((("blue", 0), ("green", 0)), []),
        ((("blue", 1),), ["blue"]),
        ((("blue", 0), ("green", 3)), ["green"]),
        ((("blue", 5), ("green", 0), ("red", 0)), ["blue"]),
        ((("blue", -1), ("green", 1)), ["green"]),
    )
    def test_only_weighted_colours(self, weights: Weights, expected: list[str]) -> None:
        """If colours have weight 0 (or none are given), then they are left out of the ranking."""
        for key in (b"", b"a", b"user-7", b"x" * 200):
            self.assertEqual(rank(key, weights, b"k"), expected)

    @rows(
        ((("blue", 4), ("green", 1)), None),
        ((("blue", 4), ("green", 1)), b"s3cret"),
        ((("blue", 1), ("green", 1), ("red", 1)), b"s3cret"),
        ((("blue", 5), ("green", 3), ("red", 2), ("canary", 0)), b"a-much-longer-secret-" * 10),
        ((("Blue", 2), ("GREEN", 7)), b""),
    )
    def test_matches_the_plain_definition(self, weights: Weights, secret: bytes | None) -> None:
        """If keys are ranked, then the fast ranking is the plainly written HMAC and -w/ln(u) one, key for key."""
        ranker = Ranker(weights, secret)
        for key in KEYS[:2000] + [b"", b"\0", b"\xff" * 300]:
            expected = reference_rank(key, weights, secret)
            self.assertEqual(rank(key, weights, secret), expected, key)
            self.assertEqual(ranker.rank(key), expected, key)

    def test_ranker_is_reusable(self) -> None:
        """If one Ranker ranks many keys, then earlier keys do not change later answers."""
        ranker = Ranker((("blue", 4), ("green", 1)), b"s3cret")
        first = [ranker.rank(key) for key in KEYS[:100]]
        again = [ranker.rank(key) for key in KEYS[:100]]
        self.assertEqual(first, again)

    def test_unset_secret_is_the_empty_key(self) -> None:
        """If no secret is set, then the hash is HMAC keyed with b"" (an unkeyed, predictable hash)."""
        weights = (("blue", 4), ("green", 1))
        for key in KEYS[:200]:
            self.assertEqual(rank(key, weights, None), rank(key, weights, b""))

    def test_colour_case(self) -> None:
        """If a colour is named in capitals, then it hashes as its lower case and is returned as given."""
        for key in KEYS[:200]:
            upper = rank(key, (("BLUE", 4), ("Green", 1)), b"k")
            lower = rank(key, (("blue", 4), ("green", 1)), b"k")
            self.assertEqual([c.lower() for c in upper], lower)
            self.assertEqual(sorted(upper), ["BLUE", "Green"])

    def test_ties_go_to_the_first_name(self) -> None:
        """If two colours score the same, then the one whose name sorts first ranks first."""
        # Names differing only in case hash alike, so their scores tie.
        for key in KEYS[:50]:
            self.assertEqual(rank(key, (("blue", 1), ("Blue", 1)), b"k"), ["Blue", "blue"])
            self.assertEqual(Ranker((("blue", 1), ("Blue", 1)), b"k").rank(key), ["Blue", "blue"])

    @rows(
        (0,),
        (1,),
        (2**32,),
        (2**63 - 1,),
        (2**63,),
        (2**64 - 2**11,),
        (2**64 - 1,),
    )
    def test_uniform_log_is_finite_and_negative(self, n: int) -> None:
        """If the hash's 64-bit number is at either end, then ln(u) is still finite and below 0 (no division by 0)."""
        value = uniform_log(n)
        self.assertTrue(math.isfinite(value) and value < 0, value)
        self.assertAlmostEqual(value, math.log((n + 0.5) / 2**64) if n < 2**63 else math.log1p(-(2**64 - n - 0.5) / 2**64))

    def test_uniform_log_increases(self) -> None:
        """If the 64-bit number grows, then ln(u) never falls, across the switch between its two formulas."""
        points = sorted({0, 1, 2, 2**62, 2**63 - 2, 2**63 - 1, 2**63, 2**63 + 1, 2**64 - 2**12, 2**64 - 2, 2**64 - 1})
        values = [uniform_log(n) for n in points]
        self.assertEqual(values, sorted(values))
        self.assertLess(values[-2], values[-1])


class HashPropertyTests(TableTests):
    @rows(
        ((("blue", 4), ("green", 1)), None),
        ((("blue", 4), ("green", 1)), b"s3cret"),
        ((("blue", 1), ("green", 1)), None),
        ((("blue", 9), ("green", 1)), b"s3cret"),
        ((("blue", 5), ("green", 3), ("red", 2)), None),
        ((("blue", 5), ("green", 3), ("red", 2)), b"s3cret"),
        ((("blue", 1), ("green", 0)), None),
        ((("blue", 0), ("green", 2), ("red", 0), ("canary", 1)), b"s3cret"),
    )
    def test_split_follows_the_weights(self, weights: Weights, secret: bytes | None) -> None:
        """If 10,000 keys are assigned, then each colour gets its weight's share, within 4 standard deviations; weight 0 gets nobody."""
        counts = Counter(assign(weights, secret))
        total = sum(weight for _, weight in weights)
        for colour, weight in weights:
            share = weight / total
            if weight == 0:
                self.assertEqual(counts[colour], 0, colour)
            else:
                self.assertLessEqual(abs(counts[colour] - share * len(KEYS)), tolerance(share), (colour, counts))

    @rows(
        # The issue's example: raising green from 1 to 3 (of 10) moves 20 % of users, all from blue.
        ((("blue", 9), ("green", 1)), (("blue", 7), ("green", 3)), "green", 0.2),
        # Lowering it again moves the same share back, only away from green.
        ((("blue", 7), ("green", 3)), (("blue", 9), ("green", 1)), "green", 0.2),
        ((("blue", 4), ("green", 1)), (("blue", 4), ("green", 4)), "green", 0.5 - 0.2),
        ((("blue", 1), ("green", 1)), (("blue", 1), ("green", 0)), "green", 0.5),
        ((("blue", 1), ("green", 0)), (("blue", 1), ("green", 1)), "green", 0.5),
        # A third colour: raising red from 2/10 to 4/12 takes users from both others.
        ((("blue", 5), ("green", 3), ("red", 2)), (("blue", 5), ("green", 3), ("red", 4)), "red", 4 / 12 - 2 / 10),
        ((("blue", 5), ("green", 3), ("red", 2)), (("blue", 5), ("green", 0), ("red", 2)), "green", 3 / 10),
        # A new colour joining at weight 1 of 3.
        ((("blue", 1), ("green", 1)), (("blue", 1), ("green", 1), ("canary", 1)), "canary", 1 / 3),
    )
    def test_weight_change_moves_fewest(self, before: Weights, after: Weights, changed: str, moved_share: float) -> None:
        """
        If one colour's weight is raised (lowered), then users move only to
        (away from) it, and as many as the change in its share, within 4
        standard deviations.
        """
        old, new = assign(before), assign(after)
        moves = Counter((a, b) for a, b in zip(old, new) if a != b)
        raised = dict(after)[changed] > dict(before).get(changed, 0)
        for (source, destination), count in moves.items():
            if raised:
                self.assertEqual(destination, changed, moves)
            else:
                self.assertEqual(source, changed, moves)
        moved = sum(moves.values())
        self.assertLessEqual(abs(moved - moved_share * len(KEYS)), tolerance(moved_share), moves)

    def test_issue_example_moves_only_blue_users(self) -> None:
        """If green goes from 1 to 3 of 10, then no green user leaves green and about 2,000 of 10,000 blue users join it."""
        old = assign((("blue", 9), ("green", 1)), b"s3cret")
        new = assign((("blue", 7), ("green", 3)), b"s3cret")
        self.assertEqual([k for k, (a, b) in enumerate(zip(old, new)) if a == "green" and b != "green"], [])
        moved = sum(a == "blue" and b == "green" for a, b in zip(old, new))
        self.assertLessEqual(abs(moved - 2000), tolerance(0.2))

    @rows(
        ((("blue", 4), ("green", 1)), (("blue", 8), ("green", 2))),
        ((("blue", 5), ("green", 3), ("red", 2)), (("blue", 50), ("green", 30), ("red", 20))),
    )
    def test_scaling_every_weight_moves_nobody(self, before: Weights, after: Weights) -> None:
        """If every weight is multiplied by the same number, then the shares, and so every user's colour, stay."""
        self.assertEqual(assign(before, b"k"), assign(after, b"k"))

    @rows(
        ((("blue", 5), ("green", 3), ("red", 2)), None),
        ((("blue", 1), ("green", 1), ("red", 1), ("canary", 1)), b"s3cret"),
    )
    def test_next_best_is_where_the_key_would_go_without_the_best(self, weights: Weights, secret: bytes | None) -> None:
        """If a key's colour cannot serve, then its next-best colour is the one it would get were that colour at weight 0."""
        ranker = Ranker(weights, secret)
        for key in KEYS[:2000]:
            ranking = ranker.rank(key)
            self.assertEqual(len(ranking), len(weights))
            without_best = [(c, 0 if c == ranking[0] else w) for c, w in weights]
            self.assertEqual(rank(key, without_best, secret), ranking[1:])

    @rows(
        ((("blue", 4), ("green", 1)), None, b"s3cret", 2 * 0.8 * 0.2),
        ((("blue", 4), ("green", 1)), b"one", b"two", 2 * 0.8 * 0.2),
        ((("blue", 1), ("green", 1)), b"one", b"two", 0.5),
        ((("blue", 5), ("green", 3), ("red", 2)), b"one", b"two", 1 - (0.5**2 + 0.3**2 + 0.2**2)),
    )
    def test_changed_secret_reshuffles(self, weights: Weights, first: bytes | None, second: bytes | None, changed_share: float) -> None:
        """If the secret changes, then colours are drawn afresh: keys change colour as often as two independent draws differ."""
        one, two = assign(weights, first), assign(weights, second)
        changed = sum(a != b for a, b in zip(one, two))
        self.assertLessEqual(abs(changed - changed_share * len(KEYS)), tolerance(changed_share))
        # Still the weights' split under the new secret.
        self.assertLessEqual(abs(Counter(two)[weights[0][0]] - len(KEYS) * weights[0][1] / sum(w for _, w in weights)), tolerance(weights[0][1] / sum(w for _, w in weights)))


class KeyTests(TableTests):
    def test_new_key(self) -> None:
        """If a key is made, then it is 128 random bits in URL-safe base64 without padding: 22 valid characters."""
        keys = {new_key() for _ in range(1000)}
        self.assertEqual(len(keys), 1000)
        for key in keys:
            self.assertEqual(len(key), 22)
            self.assertTrue(valid_key(key), key)
            self.assertNotIn("=", key)
            self.assertEqual(len(base64.urlsafe_b64decode(key + "==")), 16)

    @rows(
        ("a", True),
        ("A-z_09", True),
        ("Q2hpY2tlbnMgYW5kIGVnZ3M", True),
        ("-", True),
        ("_" * 128, True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("", False),
        ("a b", False),
        ("a=", False),
        ("a.b", False),
        ("a+b/c", False),
        ('"abc"', False),
        ("abc\n", False),
        ("ab\x00", False),
        ("é", False),
        ("\u0661", False),
        ("ｘ", False),
        (b"abc", True),
        (b"a" * 128, True),
        (b"a" * 129, False),
        (b"", False),
        (b"\xff", False),
        (b"a;b", False),
    )
    def test_valid_key(self, value: str | bytes, valid: bool) -> None:
        """If a client sends a key, then it is used only if it is 1 to 128 characters of [A-Za-z0-9_-]."""
        self.assertIs(valid_key(value), valid)


class CookieTests(TableTests):
    @rows(
        (None, None),
        ([], None),
        ([b""], None),
        ([b"sillyproxy=abc"], b"abc"),
        ([b"a=1; sillyproxy=abc; b=2"], b"abc"),
        ([b"a=1;sillyproxy=abc"], b"abc"),
        ([b"  sillyproxy=abc  ;b=2"], b"abc"),
        ([b"a=1", b"sillyproxy=abc"], b"abc"),
        ([b"sillyproxy=first; sillyproxy=second"], b"first"),
        ([b"sillyproxy=first", b"sillyproxy=second"], b"first"),
        ([b"sillyproxy-color=green.x; sillyproxy=abc"], b"abc"),
        ([b"sillyproxy-color=green.x"], None),
        ([b"xsillyproxy=1"], None),
        ([b"a=sillyproxy"], None),
        ([b"a=sillyproxy=1"], None),
        ([b"sillyproxy"], None),
        ([b"SillyProxy=abc"], None),
        ([b"sillyproxy="], b""),
        ([b"sillyproxy=a=b"], b"a=b"),
        ([b"sillyproxy = abc "], b"abc"),
        ([b'sillyproxy="abc"'], b'"abc"'),
    )
    def test_cookie(self, values: list[bytes] | None, expected: bytes | None) -> None:
        """If Cookie headers are given, then the first cookie of the name is found, names matched exactly."""
        self.assertEqual(cookie(values, b"sillyproxy"), expected)

    @rows(
        (None, None),
        ([], None),
        ([b"sillyproxy-color=green.x"], None),
        ([b"sillyproxy-color=p", b"sillyproxy-color=q"], None),
        ([b"a=1; sillyproxy-color=p; b=2"], [b"a=1; b=2"]),
        ([b"a=1", b"sillyproxy-color=p", b"b=2"], [b"a=1; b=2"]),
        ([b"sillyproxy-color=p; sillyproxy=k"], [b"sillyproxy=k"]),
        ([b"a=1;b=2 ;  sillyproxy-color=p ;c=3"], [b"a=1; b=2; c=3"]),
        ([b"a=1;;b=2; sillyproxy-color=p;"], [b"a=1; b=2"]),
        ([b"flag; sillyproxy-color=p"], [b"flag"]),
        # No "=": a nameless cookie whose value is the name (RFC 6265bis), kept.
        ([b"sillyproxy-color; a=1; sillyproxy-color=p"], [b"sillyproxy-color; a=1"]),
        ([b"sillyproxy-color = p; z=\"q r\""], [b'z="q r"']),
        ([b"a=1; other=2; sillyproxy-color=p"], [b"a=1"]),
        # Nothing to remove: every header as it came.
        ([b"a=1; b=2"], [b"a=1; b=2"]),
        ([b"a=1", b"b=2"], [b"a=1", b"b=2"]),
        ([b"x=sillyproxy-color", b"b=2"], [b"x=sillyproxy-color", b"b=2"]),
        ([b"Sillyproxy-Color=p"], [b"Sillyproxy-Color=p"]),
        ([b"sillyproxy-colour=p"], [b"sillyproxy-colour=p"]),
    )
    def test_without_cookies(self, values: list[bytes] | None, expected: list[bytes] | None) -> None:
        """If named cookies are removed, then the others stay, in order, joined by "; ", and no header is left if none stay."""
        self.assertEqual(without_cookies(values, frozenset([PASS_COOKIE, b"other"])), expected)

    def test_without_cookies_untouched_values(self) -> None:
        """If no removed name occurs at all, then the very same list is returned, at no cost."""
        values = [b"a=1; b=2", b"c=3"]
        self.assertIs(without_cookies(values, frozenset([PASS_COOKIE])), values)
        self.assertEqual(without_cookies((b"a=1",), frozenset([PASS_COOKIE])), [b"a=1"])

    @rows(
        (b"sillyproxy", "abc", 2592000, False, b"sillyproxy=abc; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax"),
        (b"sillyproxy", "abc", 2592000, True, b"sillyproxy=abc; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax; Secure"),
        (b"sp", "K-y_1", 0, False, b"sp=K-y_1; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"),
        (b"sp", "k", 60, True, b"sp=k; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"),
    )
    def test_set_cookie(self, name: bytes, key: str, max_age: int, secure: bool, expected: bytes) -> None:
        """If a new key is handed out, then Set-Cookie carries it with exactly these attributes in this order."""
        self.assertEqual(set_cookie(name, key, max_age, secure), expected)

    def test_defaults(self) -> None:
        """If nothing is configured, then the cookie is sillyproxy and lasts 30 days."""
        self.assertEqual((DEFAULT_COOKIE, DEFAULT_MAX_AGE), (b"sillyproxy", 30 * 24 * 3600))


class StickyModeTests(TableTests):
    @rows(
        ("off", StickyMode("off"), "off"),
        ("cookie", StickyMode("cookie"), "cookie"),
        ("ip", StickyMode("ip"), "ip"),
        (" Cookie\n", StickyMode("cookie"), "cookie"),
        ("OFF", StickyMode("off"), "off"),
        ("header:X-User-Id", StickyMode("header", b"x-user-id"), "header:x-user-id"),
        ("Header: X-User-Id ", StickyMode("header", b"x-user-id"), "header:x-user-id"),
        ("header:x_a!#$%&'*+-.^`|~9", StickyMode("header", b"x_a!#$%&'*+-.^`|~9"), "header:x_a!#$%&'*+-.^`|~9"),
    )
    def test_parse_sticky(self, text: str, mode: StickyMode, shown: str) -> None:
        """If SILLYPROXY_STICKY names a mode, then that is the mode, a header name lower-cased."""
        self.assertEqual(parse_sticky(text), mode)
        self.assertEqual(str(parse_sticky(text)), shown)

    @rows(
        ("", "must be off, cookie, header:NAME or ip"),
        ("cookies", "must be off, cookie, header:NAME or ip"),
        ("on", "must be off, cookie, header:NAME or ip"),
        ("ip:1.2.3.4", "must be off, cookie, header:NAME or ip"),
        ("header", "header needs a header name, as in header:X-User-Id"),
        ("header:", "header needs a header name, as in header:X-User-Id"),
        ("header:  ", "header needs a header name, as in header:X-User-Id"),
        ("header:bad name", "'bad name' is not a header name (letters, digits and !#$%&'*+-.^_`|~)"),
        ("header:a:b", "'a:b' is not a header name (letters, digits and !#$%&'*+-.^_`|~)"),
        ("header:nämlich", "'nämlich' is not a header name (letters, digits and !#$%&'*+-.^_`|~)"),
    )
    def test_parse_sticky_refused(self, text: str, reason: str) -> None:
        """If SILLYPROXY_STICKY is anything else, then the reason says what is allowed."""
        caught = self.assertRaises(ValueError, parse_sticky, text)
        self.assertEqual(str(caught), reason)

    @rows(
        ("off", False),
        ("cookie", True),
        ("ip", True),
        ("header:x", True),
    )
    def test_enabled(self, text: str, enabled: bool) -> None:
        """If the mode is off, then it says so; every other mode is sticky."""
        self.assertIs(parse_sticky(text).enabled, enabled)

    @rows(
        ("off", "nothing (off)"),
        ("cookie", "the proxy's cookie"),
        ("ip", "client IP address"),
        ("header:X-User-Id", "request header x-user-id"),
    )
    def test_describe(self, text: str, description: str) -> None:
        """If the start-up log says what users are known by, then it says it in words."""
        self.assertEqual(parse_sticky(text).describe(), description)

    def test_off_constant(self) -> None:
        """If nothing is configured, then the mode is STICKY_OFF: off, with no header."""
        self.assertEqual((STICKY_OFF, STICKY_OFF.header), (parse_sticky("off"), None))

    @rows(
        ("cookie", b"x"),
        ("header", None),
        ("header", b""),
        ("off", b"x"),
        ("off", b""),
        ("cookies", None),
        ("header", b"a b"),
        ("header", b"X-User-Id"),
    )
    def test_inconsistent_mode_refused(self, kind: str, header: bytes | None) -> None:
        """If a mode is built by hand with a header where none belongs (or none where one does), then it is refused."""
        self.assertRaises(ValueError, StickyMode, kind, header)

    @rows(
        ("x", True),
        ("X-User-Id", True),
        ("!#$%&'*+-.^_`|~09azAZ", True),
        ("", False),
        ("a b", False),
        ("a;b", False),
        ("a=b", False),
        ('"a"', False),
        ("a,b", False),
        ("a\tb", False),
        ("ä", False),
    )
    def test_is_token(self, text: str, token: bool) -> None:
        """If a name is checked, then it is an RFC 9110 token only if it is non-empty tchars."""
        self.assertIs(is_token(text), token)


SECRET = b"correct horse battery staple"
GREEN_MAC = hmac.new(SECRET, b"green", hashlib.sha256).hexdigest()[:32]


class OverridePassTests(TableTests):
    @rows(
        (b"k", "green", "green.f88e8a8d0ec6f8f8d1a0b5b6d28ede71"),
        (SECRET, "green", "green." + GREEN_MAC),
        (SECRET, "GREEN", "green." + GREEN_MAC),
        (SECRET, "blue", "blue." + hmac.new(SECRET, b"blue", hashlib.sha256).hexdigest()[:32]),
    )
    def test_make_pass(self, secret: bytes, colour: str, expected: str) -> None:
        """If a pass is made, then it is the lower-case colour, a dot, and 32 hex characters of its HMAC-SHA256."""
        self.assertEqual(make_pass(secret, colour), expected)

    @rows(
        ("green." + GREEN_MAC, ("blue", "green"), "green"),
        (b"green." + GREEN_MAC.encode(), ("blue", "green"), "green"),
        ("GREEN." + GREEN_MAC, ("blue", "green"), "green"),
        ("Green." + GREEN_MAC, ("blue", "Green"), "Green"),
        ("blue." + hmac.new(SECRET, b"blue", hashlib.sha256).hexdigest()[:32], ("blue", "green"), "blue"),
        # Refused, and never an exception.
        ("green." + GREEN_MAC, ("blue",), None),
        ("green." + GREEN_MAC, (), None),
        ("green." + GREEN_MAC.upper(), ("blue", "green"), None),
        ("green." + GREEN_MAC[:-1], ("blue", "green"), None),
        ("green." + GREEN_MAC + "0", ("blue", "green"), None),
        ("green." + GREEN_MAC[:-1] + ("0" if GREEN_MAC[-1] != "0" else "1"), ("blue", "green"), None),
        ("green." + hmac.new(b"other", b"green", hashlib.sha256).hexdigest()[:32], ("blue", "green"), None),
        ("blue." + GREEN_MAC, ("blue", "green"), None),
        (" green." + GREEN_MAC, ("blue", "green"), None),
        ("green." + GREEN_MAC + " ", ("blue", "green"), None),
        ("green.." + GREEN_MAC, ("blue", "green"), None),
        ("green", ("blue", "green"), None),
        ("green.", ("blue", "green"), None),
        (".", ("blue", "green"), None),
        ("", ("blue", "green"), None),
        (b"", ("blue", "green"), None),
        ("grün." + GREEN_MAC, ("blue", "green"), None),
        ("green." + "é" * 32, ("blue", "green"), None),
        (b"green.\xff\xfe", ("blue", "green"), None),
        (b"\xff." + GREEN_MAC.encode(), ("blue", "green"), None),
        ("green." + GREEN_MAC * 100, ("blue", "green"), None),
    )
    def test_verify_pass(self, presented: str | bytes, colours: tuple[str, ...], expected: str | None) -> None:
        """If a pass is presented, then a valid one names its configured colour, and anything else is None."""
        self.assertEqual(verify_pass(SECRET, presented, colours), expected)

    def test_names(self) -> None:
        """If the proxy looks for passes, then it uses the header and cookie names of the contract, lower-cased."""
        self.assertEqual((PASS_HEADER, PASS_COOKIE), (b"sillyproxy-color", b"sillyproxy-color"))

    @rows(
        ("s3cret", b"s3cret"),
        ("  s3cret\n", b"s3cret"),
        ("pässword", "pässword".encode()),
        ("raw\udcff", b"raw\xff"),
        ("", None),
        (" \t\n", None),
        (None, None),
    )
    def test_parse_secret(self, text: str | None, secret: bytes | None) -> None:
        """If a secret comes from the environment, then surrounding whitespace is not part of it, and blank means unset."""
        self.assertEqual(parse_secret(text), secret)


class OverrideMainTests(TableTests):
    @rows(
        (["green"], {"SILLYPROXY_OVERRIDE_SECRET": SECRET.decode()}, 0, "green." + GREEN_MAC + "\n", ""),
        (["GREEN"], {"SILLYPROXY_OVERRIDE_SECRET": " " + SECRET.decode() + "\n"}, 0, "green." + GREEN_MAC + "\n", ""),
        (
            ["green"],
            {},
            2,
            "",
            "sillyproxy.override: SILLYPROXY_OVERRIDE_SECRET is not set (it must hold the proxy's override secret)\n",
        ),
        (
            ["green"],
            {"SILLYPROXY_OVERRIDE_SECRET": "  "},
            2,
            "",
            "sillyproxy.override: SILLYPROXY_OVERRIDE_SECRET is not set (it must hold the proxy's override secret)\n",
        ),
        ([], {"SILLYPROXY_OVERRIDE_SECRET": "s"}, 2, "", "usage: python -m sillyproxy.override COLOUR\n"),
        (["blue", "green"], {"SILLYPROXY_OVERRIDE_SECRET": "s"}, 2, "", "usage: python -m sillyproxy.override COLOUR\n"),
        (
            ["green!"],
            {"SILLYPROXY_OVERRIDE_SECRET": "s"},
            2,
            "",
            "sillyproxy.override: 'green!' is not a colour name (a letter followed by letters, digits or _)\n",
        ),
        (
            ["-h"],
            {},
            0,
            "usage: python -m sillyproxy.override COLOUR\nPrint the override pass for COLOUR, from SILLYPROXY_OVERRIDE_SECRET.\n",
            "",
        ),
    )
    def test_main(self, argv: list[str], environ: dict[str, str], status: int, printed: str, error: str) -> None:
        """If the pass is asked for on the command line, then it is printed; without a secret or colour, exit 2 with one line."""
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(main(argv, environ, out, err), status)
        self.assertEqual((out.getvalue(), err.getvalue()), (printed, error))


# Run as `python -m sillyproxy.override green`, reporting which modules that imported.
_MODULE_IN_A_FRESH_INTERPRETER = """
import json, runpy, sys, io
before = set(sys.modules)
out, sys.stdout = sys.stdout, io.StringIO()
try:
    runpy.run_module("sillyproxy.override", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    status = exit.code
printed, sys.stdout = sys.stdout.getvalue(), out
print(json.dumps({"status": status, "printed": printed, "modules": sorted(set(sys.modules) - before)}))
"""


class OverrideCommandTests(SynchronousTestCase):
    def test_run_as_a_module(self) -> None:
        """If `python -m sillyproxy.override green` runs, then it prints the pass and imports no Twisted (nor typing)."""
        result = subprocess.run(
            [sys.executable, "-c", _MODULE_IN_A_FRESH_INTERPRETER, "green"],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "SILLYPROXY_OVERRIDE_SECRET": SECRET.decode()},
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        outcome = json.loads(result.stdout.splitlines()[-1])
        self.assertEqual((outcome["status"], outcome["printed"]), (0, "green." + GREEN_MAC + "\n"))
        heavy = [m for m in outcome["modules"] if m.split(".")[0] in ("twisted", "zope", "attr", "attrs", "typing")]
        self.assertEqual(heavy, [])
