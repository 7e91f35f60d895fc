"""Table tests of the step ramp: reading it, where it stands at any moment, and the weights it gives."""

from __future__ import annotations

from sillyproxy._ramp import (
    Ramp,
    RampPosition,
    parse_duration,
    parse_percentages,
    parse_rfc3339,
    ramp_weights,
)
from sillyproxy._sticky import Ranker

from .support import TableTests, rows

# 2026-12-01T10:00:00Z
T0 = 1796119200.0


class ParsingTests(TableTests):
    @rows(
        ("1,5,25,50,100", (1.0, 5.0, 25.0, 50.0, 100.0)),
        ("0,100", (0.0, 100.0)),
        ("50", (50.0,)),
        (" 0.5 , 2.25,99.99 ", (0.5, 2.25, 99.99)),
        ("100", (100.0,)),
        ("0", (0.0,)),
    )
    def test_percentages_accepted(self, text: str, expected: tuple[float, ...]) -> None:
        """If a ramp is strictly increasing within 0-100, then its percentages come back."""
        self.assertEqual(parse_percentages(text), expected)

    @rows(
        ("5,1", "not strictly increasing (5 then 1)"),
        ("5,5", "not strictly increasing (5 then 5)"),
        ("1,101", "101 is not from 0 to 100"),
        ("-1,5", "'-1' is not a percentage"),
        ("100.5", "100.5 is not from 0 to 100"),
        ("1,,5", "an empty item"),
        ("1,5,", "an empty item"),
        ("ten", "'ten' is not a percentage"),
        ("nan", "'nan' is not a percentage"),
        ("1,inf", "'inf' is not a percentage"),
        ("5%", "'5%' is not a percentage"),
        ("1_0", "'1_0' is not a percentage"),
        ("2e1", "'2e1' is not a percentage"),
        ("0.00001", "'0.00001' has more than 4 decimals"),
        ("+5", "'+5' is not a percentage"),
    )
    def test_percentages_refused(self, text: str, reason: str) -> None:
        """If a ramp is not strictly increasing within 0-100, then the reason says why."""
        self.assertEqual(str(self.assertRaises(ValueError, parse_percentages, text)), reason)

    @rows(
        ("2026-12-01T10:00:00Z", T0),
        ("2026-12-01t10:00:00z", T0),
        ("2026-12-01T11:00:00+01:00", T0),
        ("2026-12-01T11:00:00.5+01:00", T0 + 0.5),
        ("2026-12-01T04:30:00.25-05:30", T0 + 0.25),
        ("2026-12-01T10:00:00.000001Z", T0 + 0.000001),
        ("1970-01-01T00:00:00Z", 0.0),
    )
    def test_time_accepted(self, text: str, expected: float) -> None:
        """If a time is RFC 3339 with a zone, then it is that many seconds since the epoch."""
        self.assertAlmostEqual(parse_rfc3339(text), expected, places=6)

    @rows(
        ("2026-12-01T10:00:00",),
        ("2026-12-01 10:00:00Z",),
        ("2026-12-01",),
        ("20261201T100000Z",),
        ("2026-12-01T10:00Z",),
        ("2026-12-01T10:00:00+0100",),
        ("tomorrow",),
        ("2026-12-01T10:00:00.Z",),
    )
    def test_time_without_zone_or_malformed_refused(self, text: str) -> None:
        """If a time is not RFC 3339 with a zone, then it is refused with an example."""
        caught = self.assertRaises(ValueError, parse_rfc3339, text)
        self.assertIn("RFC 3339", str(caught))

    @rows(
        ("2026-02-30T10:00:00Z", "not a valid date and time"),
        ("2026-12-01T24:00:00Z", "not a valid date and time"),
        ("2026-12-31T23:59:60Z", "not a valid date and time"),
        ("2026-12-01T10:00:00+24:00", "the zone offset is not a valid hh:mm"),
    )
    def test_time_out_of_range_refused(self, text: str, reason: str) -> None:
        """If a time has a field out of range, then it is refused."""
        self.assertIn(reason, str(self.assertRaises(ValueError, parse_rfc3339, text)))

    @rows(
        ("90s", 90.0),
        ("5m", 300.0),
        ("1.5h", 5400.0),
        ("90", 90.0),
        ("1", 1.0),
        ("1.5", 1.5),
        (".5m", 30.0),
        (" 2 m ", 120.0),
    )
    def test_duration_accepted(self, text: str, seconds: float) -> None:
        """If a step length is a number with an optional unit, then it is that many seconds."""
        self.assertEqual(parse_duration(text), seconds)

    @rows(
        ("0",),
        ("0s",),
        ("0.5",),
        ("0.0000001",),
        ("-5m",),
        ("5d",),
        ("5 minutes",),
        ("m",),
        ("1e3",),
        ("9000h",),
        ("nan",),
    )
    def test_duration_refused(self, text: str) -> None:
        """If a step length is not a positive number with s, m or h, then it is refused."""
        self.assertRaises(ValueError, parse_duration, text)


FIVE = Ramp((1.0, 5.0, 25.0, 50.0, 100.0), T0, 300.0)


class PositionTests(TableTests):
    @rows(
        # Long before, and just before, the start.
        (T0 - 86400, RampPosition(0, 5, 0.0, T0)),
        (T0 - 0.001, RampPosition(0, 5, 0.0, T0)),
        # Each boundary starts its step; the instant before is the previous one.
        (T0, RampPosition(1, 5, 1.0, T0 + 300)),
        (T0 + 299.999, RampPosition(1, 5, 1.0, T0 + 300)),
        (T0 + 300, RampPosition(2, 5, 5.0, T0 + 600)),
        (T0 + 899.999, RampPosition(3, 5, 25.0, T0 + 900)),
        (T0 + 900, RampPosition(4, 5, 50.0, T0 + 1200)),
        (T0 + 1200, RampPosition(5, 5, 100.0, T0 + 1500)),
        (T0 + 1499.999, RampPosition(5, 5, 100.0, T0 + 1500)),
        # After the last step ends, the last percentage stays.
        (T0 + 1500, RampPosition(5, 5, 100.0, None)),
        (T0 + 10 * 86400, RampPosition(5, 5, 100.0, None)),
    )
    def test_five_steps(self, now: float, expected: RampPosition) -> None:
        """If time passes over a five-step ramp, then each moment has its step, percentage and next change."""
        self.assertEqual(FIVE.position(now), expected)

    @rows(
        (T0 - 1, RampPosition(0, 1, 0.0, T0)),
        (T0, RampPosition(1, 1, 20.0, T0 + 60)),
        (T0 + 60, RampPosition(1, 1, 20.0, None)),
    )
    def test_one_step(self, now: float, expected: RampPosition) -> None:
        """If a ramp has one step, then it begins at the start and stays after its end."""
        self.assertEqual(Ramp((20.0,), T0, 60.0).position(now), expected)

    def test_hundred_steps(self) -> None:
        """If a ramp has 100 steps, then every boundary starts its own step with its own percentage."""
        ramp = Ramp(tuple(float(p) for p in range(1, 101)), T0, 30.0)
        for index in range(100):
            at = ramp.position(T0 + index * 30)
            before = ramp.position(T0 + index * 30 - 0.0001)
            self.assertEqual((at.step, at.percent), (index + 1, float(index + 1)))
            self.assertEqual(before.step, index)
        self.assertEqual(ramp.position(T0 + 3000), RampPosition(100, 100, 100.0, None))

    @rows(
        # A step of a tenth of a second: 0.1 * 3 is 0.30000000000000004 in
        # floating point; the boundary computed that way is the one used.
        (0.0, 1),
        (0.1, 2),
        (0.2, 3),
        (0.1 * 3, 4),
        (0.7, 8),
        (0.7 - 1e-6, 7),
    )
    def test_decimal_step_boundaries(self, offset: float, step: int) -> None:
        """If steps are a decimal length, then each boundary computed as start + i * step starts step i + 1."""
        ramp = Ramp(tuple(float(p) for p in range(1, 11)), T0, 0.1)
        self.assertEqual(ramp.position(ramp.start + offset).step, step)
        self.assertEqual(ramp.position(ramp.boundary(step - 1)).step, step)

    def test_decimal_percentages(self) -> None:
        """If percentages have decimals, then they are kept as written."""
        ramp = Ramp((0.5, 2.25, 99.99), T0, 1.5)
        self.assertEqual(
            [ramp.position(T0 + t).percent for t in (0, 1.5, 3, 4.5)], [0.5, 2.25, 99.99, 99.99]
        )


class WeightTests(TableTests):
    @rows(
        ({"blue": 1, "green": 0}, 5.0, {"blue": 950000, "green": 50000}),
        ({"blue": 4, "red": 1, "green": 0}, 25.0, {"blue": 3000000, "red": 750000, "green": 1250000}),
        ({"blue": 1, "green": 0}, 0.0, {"blue": 1000000, "green": 0}),
        ({"blue": 1, "green": 0}, 100.0, {"blue": 0, "green": 1000000}),
        ({"blue": 1, "green": 0}, 0.5, {"blue": 995000, "green": 5000}),
        ({"blue": 0, "green": 0}, 5.0, {"blue": 0, "green": 50000}),
        ({"blue": 0, "green": 0}, 0.0, {"blue": 0, "green": 0}),
    )
    def test_share(self, weights: dict[str, int], percent: float, expected: dict[str, int]) -> None:
        """If a colour ramps, then it gets the step's share and the others the rest by their weights."""
        self.assertEqual(ramp_weights(weights, "green", percent), expected)

    def test_users_only_move_to_the_ramping_colour(self) -> None:
        """If the ramp goes up, then no sticky key leaves green, and none moves between the others."""
        configured = {"blue": 3, "red": 1, "green": 0}
        keys = [b"user-%d" % i for i in range(2000)]
        before: dict[bytes, str] | None = None
        for percent in (1.0, 5.0, 25.0, 50.0, 99.0):
            ranker = Ranker(list(ramp_weights(configured, "green", percent).items()), b"secret")
            now = {key: ranker.rank(key)[0] for key in keys}
            if before is not None:
                for key in keys:
                    if before[key] != now[key]:
                        self.assertEqual(now[key], "green", (key, before[key], now[key]))
            before = now
        assert before is not None
        # And the ramp did move users: about 99 % of them are on green now.
        self.assertGreater(sum(color == "green" for color in before.values()), 1900)
