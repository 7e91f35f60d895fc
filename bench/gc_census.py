"""
What CPython's cyclic garbage collector does while the proxy is under load:
collections, objects found and seconds spent, per generation.  A request
that leaves a reference cycle behind shows here as objects found; one that
leaves none is freed by reference counting and never reaches it.

  .venv/bin/python bench/gc_census.py [--source src] [--seconds 10]

The proxy (from C{--source}) is pinned to CPU 0 and wrk to CPU 1, as in
bench/floor.py; the collector is watched through C{gc.callbacks}, from a
C{sitecustomize} module this script puts on the proxy's path, counting from
the end of a warm-up (told by SIGUSR2).  Talks to
127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory import nginx_backend  # noqa: E402
from run import free_port, started, wrk  # noqa: E402

_WATCHER = '''
import atexit, gc, os, time

_started = [0.0]
_totals = {0: [0, 0, 0.0], 1: [0, 0, 0.0], 2: [0, 0, 0.0]}
_watching = [False]


def _watch(phase, info):
    if not _watching[0]:
        return
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    total = _totals[info["generation"]]
    total[0] += 1
    total[1] += info["collected"]
    total[2] += time.perf_counter() - _started[0]


def _begin(*_):
    _watching[0] = True


def _report():
    with open(os.environ["GC_CENSUS_OUT"], "w") as out:
        for generation, (collections, collected, seconds) in _totals.items():
            out.write(f"{generation} {collections} {collected} {seconds:.6f}\\n")


import signal
signal.signal(signal.SIGUSR2, _begin)
gc.callbacks.append(_watch)
atexit.register(_report)
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="src", help="the src directory holding the sillyproxy package")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    twistd = str(Path(sys.executable).with_name("twistd"))
    with nginx_backend() as (work, backend_port), tempfile.TemporaryDirectory() as hook:
        Path(hook, "sitecustomize.py").write_text(_WATCHER)
        out = Path(hook, "census.txt")
        port = free_port()
        command = [twistd, "--nodaemon", "--pidfile=", "--logfile=-", "sillyproxy",
                   "--listen", f"tcp:{port}:interface=127.0.0.1"]
        env = {
            "PYTHONPATH": f"{Path(args.source).resolve()}:{hook}",
            "BLUE": f"http://127.0.0.1:{backend_port}",
            "SILLYPROXY_ADMIN_LISTEN": "none",
            "GC_CENSUS_OUT": str(out),
        }
        url = f"http://127.0.0.1:{port}/"
        with started(command, port, env, work / f"census-{port}.log") as process:
            wrk(url, args.connections, 2)
            process.send_signal(signal.SIGUSR2)  # count from here (twistd takes SIGUSR1)
            result = wrk(url, args.connections, args.seconds)
        # The proxy writes its counts as it exits, which started() waits for.
        census = out.read_text().splitlines()
    requests = result["rps"] * args.seconds
    print(f"wrk -t1 -c{args.connections} -d{args.seconds}s: {requests:,.0f} requests; "
          "the cyclic collector meanwhile, by generation")
    print("| generation | collections | objects found | seconds | objects found per request |\n|---|---:|---:|---:|---:|")
    for line in census:
        generation, collections, collected, seconds = line.split()
        print(f"| {generation} | {int(collections):,} | {int(collected):,} | {float(seconds):.3f} | "
              f"{int(collected) / requests:.2f} |")


if __name__ == "__main__":
    main()
