"""
sillyproxy against Twisted's ReverseProxyResource, taking turns: the ratio
of their small-body requests/s, round by round, and its median.

  .venv/bin/python bench/ratio.py [--rounds 5] [--seconds 10]

bench/run.py measures each target in a block of its own, so when the
machine's speed drifts between blocks (a shared machine's does, by 10 % or
more within minutes) the ratio drifts with it.  Here both proxies run side
by side, idle but one, and every round measures one then the other, so that
each round's ratio comes from two runs a few seconds apart.  Same settings
as bench/run.py: nginx backends (sillyproxy splitting 4:1, and
ReverseProxyResource to blue), the proxy on CPU 0, wrk and nginx on CPU 1,
`wrk -t1 -c50` after a warm-up.  Talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import ROOT, SMALL, free_port, start_backends, started, stop, wait_port, wrk  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sillyproxy-bench-"))
    backend, blue, green = start_backends(work)
    python = sys.executable
    twistd = str(Path(python).with_name("twistd"))
    proxy_port, rpr_port = free_port(), free_port()
    proxy = (
        [twistd, "--nodaemon", "--pidfile=", "--logfile=-", "sillyproxy", "--listen", f"tcp:{proxy_port}:interface=127.0.0.1"],
        {
            "BLUE": f"http://127.0.0.1:{blue}",
            "GREEN": f"http://127.0.0.1:{green}",
            "BLUE_WEIGHT": "4",
            "GREEN_WEIGHT": "1",
            "SILLYPROXY_ADMIN_LISTEN": "none",
        },
    )
    rpr = ([python, str(ROOT / "bench" / "reverse_proxy_resource.py"), str(rpr_port), str(blue)], {})
    rounds: list[tuple[float, float]] = []
    try:
        wait_port(blue, backend)
        wait_port(green, backend)
        with ExitStack() as running:
            running.enter_context(started(proxy[0], proxy_port, proxy[1], work / "sillyproxy.log"))
            running.enter_context(started(rpr[0], rpr_port, rpr[1], work / "rpr.log"))
            urls = (f"http://127.0.0.1:{proxy_port}{SMALL}", f"http://127.0.0.1:{rpr_port}{SMALL}")
            for url in urls:
                wrk(url, args.connections, 3)
            for _ in range(args.rounds):
                proxy_rps, rpr_rps = (wrk(url, args.connections, args.seconds)["rps"] for url in urls)
                rounds.append((proxy_rps, rpr_rps))
                print(f"sillyproxy {proxy_rps:.0f}  ReverseProxyResource {rpr_rps:.0f}  "
                      f"ratio {proxy_rps / rpr_rps:.2f}", file=sys.stderr)
    finally:
        stop(backend)
        shutil.rmtree(work, ignore_errors=True)
    ratios = [proxy_rps / rpr_rps for proxy_rps, rpr_rps in rounds]
    print(f"wrk -t1 -c{args.connections} -d{args.seconds}s, small bodies, {args.rounds} rounds taking turns; "
          "both proxies on CPU 0, wrk and nginx on CPU 1")
    print("| round | sillyproxy req/s | ReverseProxyResource req/s | ratio |\n|---|---:|---:|---:|")
    for number, ((proxy_rps, rpr_rps), ratio) in enumerate(zip(rounds, ratios), 1):
        print(f"| {number} | {proxy_rps:.0f} | {rpr_rps:.0f} | {ratio:.2f} |")
    print(f"| median | {statistics.median(r[0] for r in rounds):.0f} | "
          f"{statistics.median(r[1] for r in rounds):.0f} | **{statistics.median(ratios):.2f}** |")


if __name__ == "__main__":
    main()
