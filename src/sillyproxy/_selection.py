"""Choose which colour serves a request, in proportion to the colours' weights."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Generic, Protocol, TypeVar

__all__ = ["Weighted", "WeightedChooser", "choose_weighted"]


class Weighted(Protocol):
    @property
    def weight(self) -> int: ...


T = TypeVar("T", bound=Weighted)


def choose_weighted(
    items: Sequence[T], cumulative: Sequence[int], point: int
) -> T:
    """
    Return the item whose slice of C{[0, total)} holds C{point}.

    C{cumulative} is the running total of the items' weights, so an item of
    weight 0 owns an empty slice and is never returned.
    """
    return items[bisect_right(cumulative, point)]


class WeightedChooser(Generic[T]):
    """
    Pick among items with probability weight / total weight.

    @param randbelow: returns a uniform integer in C{[0, n)}; pass a seeded
        C{random.Random().randrange} to make the choices repeatable.
    @param weights: the items' weights, in order, when not their own
        C{weight} (as while a ramp or a rollback changes them).
    """

    def __init__(
        self,
        items: Sequence[T],
        randbelow: Callable[[int], int],
        weights: Sequence[int] | None = None,
    ) -> None:
        self._items = tuple(items)
        if weights is None:
            weights = [item.weight for item in self._items]
        self._cumulative = tuple(accumulate(weights))
        self.total = self._cumulative[-1] if self._cumulative else 0
        self._randbelow = randbelow

    def choose(self) -> T | None:
        """Return an item, or None when no item has a weight above 0."""
        if self.total == 0:
            return None
        return choose_weighted(self._items, self._cumulative, self._randbelow(self.total))
