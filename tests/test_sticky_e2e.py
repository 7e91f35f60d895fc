"""End-to-end: sticky cookies with real proxy processes, as replicas and rolling updates run them."""

from __future__ import annotations

import http.client
from pathlib import Path

from .processes import Twistd, start_twistd

SECRET = "a shared sticky secret"


def _proxy(apps: tuple[int, int], tmp_path: Path, green_weight: int = 1) -> Twistd:
    blue, green = apps
    return start_twistd(
        "sillyproxy",
        [],
        {
            "BLUE": f"http://127.0.0.1:{blue}",
            "GREEN": f"http://127.0.0.1:{green}",
            "BLUE_WEIGHT": "4",
            "GREEN_WEIGHT": str(green_weight),
            "SILLYPROXY_STICKY": "cookie",
            "SILLYPROXY_STICKY_SECRET": SECRET,
            "SILLYPROXY_ACCESS_LOG": "off",
        },
        tmp_path,
    )


def _colours(proxy: Twistd, keys: list[str]) -> dict[str, str]:
    """The colour each sticky cookie gets, over one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    colours = {}
    try:
        for key in keys:
            connection.request("GET", "/", headers={"Cookie": f"sillyproxy={key}"})
            response = connection.getresponse()
            colours[key] = response.read().decode().split()[0]
    finally:
        connection.close()
    return colours


def _answers(proxy: Twistd, key: str, count: int) -> list[str]:
    """The colour of each of C{count} requests with one sticky cookie."""
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    answers = []
    try:
        for _ in range(count):
            connection.request("GET", "/", headers={"Cookie": f"sillyproxy={key}"})
            answers.append(connection.getresponse().read().decode().split()[0])
    finally:
        connection.close()
    return answers


KEYS = [f"user{i:04d}" for i in range(500)]


def test_two_replicas_agree_and_a_cookie_keeps_its_colour(apps, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """If two proxy processes run with the same settings, then they give each of 500 cookies the same colour, and one cookie keeps its colour over 50 requests."""
    first, second = _proxy(apps, tmp_path), _proxy(apps, tmp_path)
    try:
        one, two = _colours(first, KEYS), _colours(second, KEYS)
        assert one == two
        greens = sum(colour == "green" for colour in one.values())
        assert 60 <= greens <= 140, greens  # 1 in 5 of 500, with room
        answers = _answers(first, "steady", 50)
        assert len(answers) == 50 and set(answers) == {_colours(second, ["steady"])["steady"]}, answers
    finally:
        first.stop()
        second.stop()


def test_raising_green_keeps_every_green_user_green(apps, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """If the proxy restarts with green's weight raised, then every cookie that was green stays green, and only blue cookies move (to green)."""
    before_proxy = _proxy(apps, tmp_path, green_weight=1)
    try:
        before = _colours(before_proxy, KEYS)
    finally:
        before_proxy.stop()
    after_proxy = _proxy(apps, tmp_path, green_weight=3)
    try:
        after = _colours(after_proxy, KEYS)
    finally:
        after_proxy.stop()
    assert all(after[key] == "green" for key in KEYS if before[key] == "green")
    moved = [key for key in KEYS if before[key] != after[key]]
    assert moved and all(before[key] == "blue" and after[key] == "green" for key in moved)
