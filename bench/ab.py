"""
A/B a speed idea: sillyproxy from two or more source trees, taking turns
under the same load, with requests/s and CPU time per request for each.

  git worktree add /tmp/before HEAD~1
  .venv/bin/python bench/ab.py /tmp/before/src src [--rounds 3] [--seconds 5]

Each round runs every tree once, in turn, so that the machine's drift
falls on all of them alike; the median of the rounds is reported.  The
proxy is pinned to CPU 0 and wrk to CPU 1, as in bench/floor.py.  Talks to
127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from floor import measure  # noqa: E402
from memory import nginx_backend  # noqa: E402
from run import BROWSER_HEADERS, free_port, started  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", help="src directories (each holding the sillyproxy package)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument(
        "--browser", action="store_true", help="send a browser's request headers (bench/run.py's BROWSER_HEADERS), not wrk's Host alone"
    )
    args = parser.parse_args()
    twistd = str(Path(sys.executable).with_name("twistd"))
    results: dict[str, list[tuple[float, float]]] = {source: [] for source in args.sources}
    with nginx_backend() as (work, backend_port):
        for _ in range(args.rounds):
            for source in args.sources:
                port = free_port()
                command = [twistd, "--nodaemon", "--pidfile=", "--logfile=-", "sillyproxy",
                           "--listen", f"tcp:{port}:interface=127.0.0.1"]
                env = {
                    "PYTHONPATH": str(Path(source).resolve()),
                    "BLUE": f"http://127.0.0.1:{backend_port}",
                    "SILLYPROXY_ADMIN_LISTEN": "none",
                }
                with started(command, port, env, work / f"ab-{port}.log") as process:
                    results[source].append(
                        measure(
                            process.pid,
                            f"http://127.0.0.1:{port}/",
                            args.connections,
                            args.seconds,
                            BROWSER_HEADERS if args.browser else (),
                        )
                    )
    sent = f", {len(BROWSER_HEADERS) + 1} request headers" if args.browser else ""
    print(f"wrk -t1 -c{args.connections} -d{args.seconds}s{sent}, {args.rounds} rounds taking turns, median; "
          "CPU time (user + system) of the proxy from /proc")
    print("| source | req/s | µs of CPU per request | each round's req/s |\n|---|---:|---:|---|")
    for source, runs in results.items():
        rates = [rate for rate, _ in runs]
        costs = [cost for _, cost in runs]
        print(f"| {source} | {statistics.median(rates):.0f} | {statistics.median(costs):.1f} | "
              f"{', '.join(f'{rate:.0f}' for rate in rates)} |")


if __name__ == "__main__":
    main()
