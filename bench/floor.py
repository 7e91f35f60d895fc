"""CPU time per request: sillyproxy against twisted.web alone and a bare Agent forwarder, under the same load."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory import nginx_backend  # noqa: E402
from run import free_port, started, wrk  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def measure(
    process_pid: int, url: str, connections: int, seconds: int, headers: Sequence[str] = ()
) -> tuple[float, float]:
    """(requests/s, µs of CPU per request) over one wrk run after a short warm-up."""
    wrk(url, connections, 2, headers)
    before = cpu_seconds(process_pid)
    result = wrk(url, connections, seconds, headers)
    used = cpu_seconds(process_pid) - before
    requests = result["rps"] * seconds
    return result["rps"], 1e6 * used / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="runs per target; the median is reported")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent
    python = sys.executable
    twistd = str(Path(python).with_name("twistd"))

    with nginx_backend() as (work, backend_port):
        targets = {
            "twisted.web alone": ([python, str(here / "floor_servers.py"), "twisted.web"], {}),
            "twisted.web + Agent pool, nothing else": (
                [python, str(here / "floor_servers.py"), "agent"],
                {},
            ),
            "sillyproxy": (
                [twistd, "--nodaemon", "--pidfile=", "--logfile=-", "sillyproxy", "--listen"],
                {"BLUE": f"http://127.0.0.1:{backend_port}", "SILLYPROXY_ADMIN_LISTEN": "none"},
            ),
        }
        print(f"wrk -t1 -c{args.connections} -d{args.seconds}s, median of {args.repeat}; "
              "CPU time (user + system) of the server process from /proc")
        print("| server | req/s | µs of CPU per request |\n|---|---:|---:|")
        for name, (command, env) in targets.items():
            rates, costs = [], []
            for _ in range(args.repeat):
                port = free_port()
                if name == "sillyproxy":
                    full = command + [f"tcp:{port}:interface=127.0.0.1"]
                else:
                    full = command + [str(port), str(backend_port)]
                with started(full, port, env, work / f"floor-{port}.log") as process:
                    rate, cost = measure(process.pid, f"http://127.0.0.1:{port}/", args.connections, args.seconds)
                rates.append(rate)
                costs.append(cost)
            print(f"| {name} | {statistics.median(rates):.0f} | {statistics.median(costs):.0f} |")


if __name__ == "__main__":
    main()
