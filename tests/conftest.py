"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .processes import Twistd


@pytest.fixture
def running() -> Iterator[list[Twistd]]:
    """The twistd processes a test starts; each is stopped (by its PID) when the test ends."""
    started: list[Twistd] = []
    yield started
    for process in started:
        process.stop()
