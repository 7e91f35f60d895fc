"""Tests for choosing a colour by weight."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from attrs import frozen

from sillyproxy._selection import WeightedChooser, choose_weighted


@frozen
class Item:
    name: str
    weight: int


ITEMS = [Item("blue", 4), Item("off", 0), Item("green", 1)]
CUMULATIVE = [4, 4, 5]


@pytest.mark.parametrize(
    "point, name",
    [(0, "blue"), (3, "blue"), (4, "green")],
)
def test_choose_weighted_slices(point: int, name: str) -> None:
    """If a point falls in an item's slice of the total, then that item is chosen; weight 0 owns none."""
    assert choose_weighted(ITEMS, CUMULATIVE, point).name == name


@pytest.mark.parametrize(
    "weights",
    [(4, 1), (1, 1), (1, 0, 3), (1, 999_999), (7, 2, 1)],
)
def test_split_within_binomial_tolerance(weights: tuple[int, ...]) -> None:
    """If 10,000 seeded picks are made, then each colour's count is within 5 sigma of weight/total."""
    items = [Item(f"c{i}", w) for i, w in enumerate(weights)]
    chooser = WeightedChooser(items, random.Random(1234).randrange)
    picks = 10_000
    counts = Counter(chooser.choose().name for _ in range(picks))
    total = sum(weights)
    for item in items:
        p = item.weight / total
        expected = picks * p
        sigma = math.sqrt(picks * p * (1 - p))
        assert abs(counts[item.name] - expected) <= 5 * sigma + 1, (item, counts)
        if item.weight == 0:
            assert counts[item.name] == 0


def test_no_weight_means_no_choice() -> None:
    """If every weight is 0, or there are no items, then nothing is chosen."""
    assert WeightedChooser([Item("a", 0), Item("b", 0)], random.Random(0).randrange).choose() is None
    assert WeightedChooser([], random.Random(0).randrange).choose() is None


def test_same_seed_same_choices() -> None:
    """If the random source is seeded alike, then the choices repeat exactly."""
    first = WeightedChooser(ITEMS, random.Random(7).randrange)
    second = WeightedChooser(ITEMS, random.Random(7).randrange)
    assert [first.choose() for _ in range(50)] == [second.choose() for _ in range(50)]
