"""Tests for choosing a colour by weight: the one statistical test of the split lives here."""

from __future__ import annotations

import math
import random
from collections import Counter

from attrs import frozen
from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._selection import WeightedChooser, choose_weighted

from .support import TableTests, rows


@frozen
class Item:
    name: str
    weight: int


ITEMS = [Item("blue", 4), Item("off", 0), Item("green", 1)]
CUMULATIVE = [4, 4, 5]


class SliceTests(TableTests):
    @rows((0, "blue"), (3, "blue"), (4, "green"))
    def test_choose_weighted_slices(self, point: int, name: str) -> None:
        """If a point falls in an item's slice of the total, then that item is chosen; weight 0 owns none."""
        self.assertEqual(choose_weighted(ITEMS, CUMULATIVE, point).name, name)


class SplitTests(TableTests):
    @rows((4, 1), (1, 1), (1, 0, 3), (1, 999_999), (7, 2, 1))
    def test_split_within_binomial_tolerance(self, *weights: int) -> None:
        """
        If 10,000 seeded picks are made, then each colour's count is within 5
        sigma of its share, weight/total (a weight of 0 gets none).
        """
        items = [Item(f"c{i}", w) for i, w in enumerate(weights)]
        chooser = WeightedChooser(items, random.Random(1234).randrange)
        picks = 10_000
        counts = Counter(chooser.choose().name for _ in range(picks))
        total = sum(weights)
        outside = []
        for item in items:
            p = item.weight / total
            expected = picks * p
            sigma = math.sqrt(picks * p * (1 - p))
            if abs(counts[item.name] - expected) > 5 * sigma + 1:
                outside.append((item, counts[item.name], expected))
        self.assertEqual(outside, [])
        self.assertEqual(sum(counts.values()), picks)


class ChooserTests(SynchronousTestCase):
    def test_weight_zero_is_never_chosen(self) -> None:
        """If an item weighs 0, then no draw from 0 to total - 1 chooses it, and every other item owns weight-many draws."""
        owners = Counter(choose_weighted(ITEMS, CUMULATIVE, point).name for point in range(5))
        self.assertEqual(owners, Counter({"blue": 4, "green": 1}))

    def test_no_weight_means_no_choice(self) -> None:
        """If every weight is 0, or there are no items, then nothing is chosen."""
        self.assertIsNone(WeightedChooser([Item("a", 0), Item("b", 0)], random.Random(0).randrange).choose())
        self.assertIsNone(WeightedChooser([], random.Random(0).randrange).choose())

    def test_same_seed_same_choices(self) -> None:
        """If the random source is seeded alike, then the choices repeat exactly."""
        first = WeightedChooser(ITEMS, random.Random(7).randrange)
        second = WeightedChooser(ITEMS, random.Random(7).randrange)
        self.assertEqual([first.choose() for _ in range(50)], [second.choose() for _ in range(50)])
