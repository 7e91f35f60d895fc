"""
How many CPUs this process may use, for C{SILLYPROXY_WORKERS=auto}: the
CPUs its affinity allows, further capped by a cgroup CPU quota, which is
what a container's C{--cpus} (or a Kubernetes CPU limit) sets.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["MAX_WORKERS", "available_cpus", "cgroup_cpu_limit", "parse_workers", "workers_for"]

MAX_WORKERS = 256


def parse_workers(text: str) -> int | None:
    """
    Parse C{SILLYPROXY_WORKERS}: a whole number from 1 to L{MAX_WORKERS},
    or C{auto} (returned as None: count the CPUs at start).

    @raise ValueError: with a short reason.
    """
    word = text.strip().lower()
    if word == "auto":
        return None
    if not word.isdigit() or len(word) > 4 or not 1 <= int(word) <= MAX_WORKERS:
        raise ValueError(f"must be auto or a whole number from 1 to {MAX_WORKERS}")
    return int(word)


def _quota_v2(text: str) -> float | None:
    """CPUs from a cgroup v2 C{cpu.max} (C{"200000 100000"}, or C{"max 100000"}: none)."""
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _quota_v1(quota_text: str, period_text: str) -> float | None:
    """CPUs from cgroup v1's C{cpu.cfs_quota_us} and C{cpu.cfs_period_us} (quota -1: none)."""
    try:
        quota, period = int(quota_text.strip()), int(period_text.strip())
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _ancestors(path: str) -> list[str]:
    """C{/a/b} -> C{["/a/b", "/a", "/"]}: a quota anywhere above applies too."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:i]) for i in range(len(parts), -1, -1)]


def cgroup_cpu_limit(root: Path = Path("/")) -> float | None:
    """
    The tightest CPU quota over this process's cgroup and its ancestors, in
    CPUs (1.5 for C{--cpus=1.5}), or None when there is none.

    @param root: where C{proc/self/cgroup} and C{sys/fs/cgroup} are found
        (tests pass a directory of fake files).
    """
    membership = _read(root / "proc/self/cgroup")
    if membership is None:
        return None
    mount = root / "sys/fs/cgroup"
    limits: list[float] = []
    for line in membership.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            # cgroup v2: one unified tree.
            for directory in _ancestors(path):
                text = _read(mount / directory.lstrip("/") / "cpu.max")
                limit = _quota_v2(text) if text is not None else None
                if limit is not None:
                    limits.append(limit)
        elif "cpu" in controllers.split(","):
            # cgroup v1: the cpu controller's tree, mounted under its own name.
            for name in (controllers, "cpu", "cpu,cpuacct"):
                base = mount / name
                if not base.is_dir():
                    continue
                for directory in _ancestors(path):
                    folder = base / directory.lstrip("/")
                    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
                    if quota is not None and period is not None:
                        limit = _quota_v1(quota, period)
                        if limit is not None:
                            limits.append(limit)
                break
    return min(limits) if limits else None


def workers_for(affinity: int, limit: float | None) -> int:
    """
    C{auto}'s number of workers: the CPUs in the affinity mask, capped by
    the cgroup quota rounded down (a quota of 1.5 CPUs gets 1 worker, as
    Go's automaxprocs does it: a second would only be throttled), at least 1.
    """
    count = affinity
    if limit is not None:
        count = min(count, math.floor(limit))
    return max(1, count)


def available_cpus(root: Path = Path("/"), affinity: set[int] | None = None) -> int:
    """
    L{workers_for} this process: its affinity mask (C{affinity}, for tests;
    by default the process's own) and its cgroup's quota.
    """
    if affinity is None:
        if hasattr(os, "sched_getaffinity"):
            affinity = os.sched_getaffinity(0)
        else:
            affinity = set(range(os.cpu_count() or 1))
    return workers_for(len(affinity), cgroup_cpu_limit(root))
