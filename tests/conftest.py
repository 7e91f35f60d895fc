"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .processes import Twistd, start_twistd


@pytest.fixture
def running() -> Iterator[list[Twistd]]:
    """The twistd processes a test starts; each is stopped (by its PID) when the test ends."""
    started: list[Twistd] = []
    yield started
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def apps(tmp_path_factory) -> Iterator[tuple[int, int]]:  # type: ignore[no-untyped-def]
    """A blue and a green myapp (each answers with its colour), for one test module: their ports."""
    logs = tmp_path_factory.mktemp("apps")
    blue = start_twistd("myapp", [], {}, logs)
    green = start_twistd("myapp", [], {}, logs)
    yield blue.port, green.port
    blue.stop()
    green.stop()
