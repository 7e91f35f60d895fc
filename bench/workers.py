"""
SILLYPROXY_WORKERS on this machine: requests/s of one process against two
workers, how evenly the kernel spreads connections over the workers, and
the memory (RSS and PSS) of each process, idle.

  .venv/bin/python bench/workers.py [--seconds 10] [--repeat 3]

Two runs of wrk for each case: one with wrk and the nginx backend on CPU 1
and the proxy unpinned (the proxy has one core to itself and shares the
other: what a 2-core machine gives a 2-worker proxy next to its load), one
with everything unpinned.  Talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import LOAD_CPU, free_port, start_backends, stop, wait_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def wrk(url: str, connections: int, seconds: int, pinned: bool) -> float:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url]
    if pinned:
        command = ["taskset", "-c", LOAD_CPU] + command
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(out)


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process, in KiB, from /proc/PID/smaps_rollup."""
    rss = pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def start_proxy(workers: int, port: int, admin: int, backend_ports: tuple[int, int], log: Path) -> subprocess.Popen:
    blue, green = backend_ports
    env = {
        **os.environ,
        "BLUE": f"http://127.0.0.1:{blue}",
        "GREEN": f"http://127.0.0.1:{green}",
        "BLUE_WEIGHT": "4",
        "GREEN_WEIGHT": "1",
        "SILLYPROXY_ACCESS_LOG": "off",
        "SILLYPROXY_WORKERS": str(workers),
        "SILLYPROXY_ADMIN_LISTEN": f"tcp:{admin}:interface=127.0.0.1",
    }
    twistd = str(Path(sys.executable).with_name("twistd"))
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [twistd, "--nodaemon", "--pidfile=", "--logfile=-", "sillyproxy", "--listen", f"tcp:{port}:interface=127.0.0.1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    wait_port(port, process)
    # Every worker up: /readyz is 200 once one serves, so wait for the count.
    deadline = time.monotonic() + 30
    while workers > 1 and len(children(process.pid)) < workers and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)
    return process


def worker_requests(admin: int) -> list[int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/status", timeout=10) as response:
        return [w["requests"] for w in json.load(response).get("workers", [])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sillyproxy-workers-bench-"))
    backend, blue, green = start_backends(work)
    rows = []
    try:
        wait_port(blue, backend)
        for workers in (1, 2):
            port, admin = free_port(), free_port()
            process = start_proxy(workers, port, admin, (blue, green), work / f"proxy-{workers}.log")
            try:
                pids = [process.pid] + children(process.pid)
                idle = {pid: memory_kib(pid) for pid in pids}
                url = f"http://127.0.0.1:{port}/"
                wrk(url, args.connections, 3, pinned=True)
                measured = {}
                for pinned in (True, False):
                    runs = sorted(wrk(url, args.connections, args.seconds, pinned) for _ in range(args.repeat))
                    measured[pinned] = runs[len(runs) // 2]
                spread = worker_requests(admin) if workers > 1 else []
                rows.append((workers, measured, idle, spread))
                print(f"{workers} worker(s): {measured[True]:.0f} req/s (load pinned), "
                      f"{measured[False]:.0f} unpinned; per-worker requests {spread}", file=sys.stderr)
            finally:
                stop(process)
    finally:
        stop(backend)
        shutil.rmtree(work, ignore_errors=True)

    one = rows[0][1]
    print(f"\nwrk -t1 -c{args.connections} -d{args.seconds}s, median of {args.repeat}; nginx backend on CPU {LOAD_CPU}\n")
    print("| proxy | req/s, wrk on CPU 1 | vs 1 | req/s, wrk unpinned | vs 1 | idle RSS, MiB | idle PSS, MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for workers, measured, idle, _ in rows:
        rss = sum(r for r, _ in idle.values()) / 1024
        pss = sum(p for _, p in idle.values()) / 1024
        print(f"| {workers} worker(s) | {measured[True]:.0f} | {measured[True] / one[True]:.2f}x | "
              f"{measured[False]:.0f} | {measured[False] / one[False]:.2f}x | {rss:.0f} | {pss:.0f} |")
    print("\nIdle memory per process (KiB):")
    for workers, _, idle, _ in rows:
        for pid, (rss, pss) in idle.items():
            print(f"  {workers} worker(s): pid {pid}: RSS {rss}, PSS {pss}")
    for workers, _, _, spread in rows:
        if spread:
            print(f"\nRequests per worker after the runs: {spread}; "
                  f"busiest / least busy = {max(spread) / max(1, min(spread)):.2f}")


if __name__ == "__main__":
    main()
