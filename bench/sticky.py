"""
What sticky cookies cost: sillyproxy with SILLYPROXY_STICKY=off and =cookie,
alternated under the same wrk -c50 load (wrk keeps no cookies, so every
request is a new user who gets a new key and a Set-Cookie: the most sticky
routing ever costs).  Reports the median requests/s and CPU per request of
each; the proxy on CPU 0, wrk and the nginx backend on CPU 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from floor import measure  # noqa: E402
from memory import nginx_backend  # noqa: E402
from run import free_port, started  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="off/cookie alternations")
    parser.add_argument("--seconds", type=int, default=6)
    args = parser.parse_args()
    twistd = str(Path(sys.executable).with_name("twistd"))
    results: dict[str, list[tuple[float, float]]] = {"off": [], "cookie": []}
    with nginx_backend() as (work, backend_port):
        for _ in range(args.rounds):
            for mode in results:
                env = {
                    "BLUE": f"http://127.0.0.1:{backend_port}",
                    "SILLYPROXY_ADMIN_LISTEN": "none",
                    "SILLYPROXY_STICKY": mode,
                    "SILLYPROXY_STICKY_SECRET": "bench",
                }
                port = free_port()
                command = [
                    twistd, "--nodaemon", "--pidfile=", "--logfile=-", "sillyproxy",
                    "--listen", f"tcp:{port}:interface=127.0.0.1",
                ]
                with started(command, port, env, work / f"sticky-{mode}-{port}.log") as process:
                    results[mode].append(measure(process.pid, f"http://127.0.0.1:{port}/", 50, args.seconds))
    print(f"wrk -t1 -c50 -d{args.seconds}s, {args.rounds} alternations, medians")
    print("| SILLYPROXY_STICKY | req/s | µs of CPU per request |\n|---|---:|---:|")
    for mode, runs in results.items():
        print(f"| {mode} | {statistics.median(r for r, _ in runs):.0f} | {statistics.median(c for _, c in runs):.0f} |")


if __name__ == "__main__":
    main()
