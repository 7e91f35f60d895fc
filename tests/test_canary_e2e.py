"""
End-to-end: the step ramp and automatic rollback with real proxy processes,
as replicas, restarts and a failing release run them.
"""

from __future__ import annotations

import http.client
import time
from pathlib import Path

from sillyproxy._timestamps import rfc3339

from .processes import Twistd, start_twistd


def _proxy(apps: tuple[int, int], tmp_path: Path, **environ: str) -> Twistd:
    blue, green = apps
    return start_twistd(
        "sillyproxy",
        [],
        {
            "BLUE": f"http://127.0.0.1:{blue}",
            "GREEN": f"http://127.0.0.1:{green}",
            "SILLYPROXY_ACCESS_LOG": "off",
            **environ,
        },
        tmp_path,
    )


def _colours(proxy: Twistd, count: int) -> list[tuple[int, str]]:
    """The status and colour of each of C{count} requests, one after another on one connection."""
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    answers = []
    try:
        for _ in range(count):
            connection.request("GET", "/")
            response = connection.getresponse()
            answers.append((response.status, response.read().decode().split()[0]))
    finally:
        connection.close()
    return answers


def test_two_proxies_started_apart_agree(apps, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """
    If two proxies with the same ramp start 3 s apart, the first before the
    ramp begins and the second after, then at the same moment both give
    green the first step's share, and their traffic shows it.
    """
    launched = time.monotonic()
    start = time.time() + 3
    ramp = {"GREEN_RAMP": "20,80", "GREEN_RAMP_START": rfc3339(start), "GREEN_RAMP_STEP": "1h"}
    first = _proxy(apps, tmp_path, **ramp)
    try:
        # Started before the ramp: it logged the wait, with green at 0 %.
        assert first.logged("green ramp: 2 steps begin at")
        time.sleep(max(0.0, launched + 3 - time.monotonic()))
        second = _proxy(apps, tmp_path, **ramp)
        try:
            shares = [p.status()["colors"]["green"]["share"] for p in (first, second)]
            assert shares == [0.2, 0.2]
            for proxy in (first, second):
                greens = sum(colour == "green" for _, colour in _colours(proxy, 400))
                # Binomial(400, 0.2): 80 +- 8; five standard deviations either way.
                assert 40 <= greens <= 120, greens
            assert first.logged("green ramp step 1 of 2 (20%)")
            assert second.logged("green ramp step 1 of 2 (20%)")
        finally:
            second.stop()
    finally:
        first.stop()


def test_restarted_mid_ramp_resumes_at_the_clocks_step(apps, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """If a proxy restarts in the middle of a ramp, then it comes back at the step the clock says, not at the first."""
    start = float(int(time.time()) - 90)
    ramp = {"GREEN_RAMP": "10,50,90", "GREEN_RAMP_START": rfc3339(start), "GREEN_RAMP_STEP": "60s"}
    seen = []
    for _ in range(2):
        proxy = _proxy(apps, tmp_path, **ramp)
        try:
            green = proxy.status()["colors"]["green"]
            seen.append((green["ramp"], green["share"]))
        finally:
            proxy.stop()
    expected = {"step": 2, "steps": 3, "percent": 50.0, "next_step_at": rfc3339(start + 120)}
    assert seen == [(expected, 0.5), (expected, 0.5)]


def test_failing_green_is_rolled_back(tmp_path: Path) -> None:
    """
    If green answers 500 to everything, then after the minimum number of
    its requests it is rolled back, the very next request goes to blue,
    /healthz fails, and the rollback is logged with its numbers.
    """
    blue = start_twistd("myapp", [], {}, tmp_path)
    green = start_twistd("myapp", [], {"MYAPP_ERROR_RATE": "1"}, tmp_path)
    try:
        proxy = _proxy(
            (blue.port, green.port),
            tmp_path,
            GREEN_ROLLBACK_ERROR_RATE="0.2",
            SILLYPROXY_ANALYSIS_MIN_REQUESTS="20",
            SILLYPROXY_ROLLBACK_HEALTHZ="1",
        )
        try:
            assert proxy.admin("/healthz") == (200, b"ok\n")
            answers = _colours(proxy, 400)
            failed = [i for i, (status, _) in enumerate(answers) if status == 500]
            assert len(failed) == 20, answers
            after = answers[failed[-1] + 1 :]
            assert after and all(answer == (200, "blue") for answer in after), after
            assert proxy.admin("/healthz") == (503, b"rolled back: green")
            assert proxy.admin("/readyz")[0] == 200
            green_status = proxy.status()["colors"]["green"]
            assert (green_status["rolled_back"], green_status["share"]) == (True, 0.0)
            assert proxy.logged("green rolled back: error rate 1.000 over the last 30 s (20 of 20 requests failed)")
        finally:
            proxy.stop()
    finally:
        blue.stop()
        green.stop()
