"""Load test: 500 concurrent connections for 60 s; no non-2xx answers and a steady RSS."""

from __future__ import annotations

import argparse
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory import nginx_backend, start_proxy, status_kib  # noqa: E402
from run import stop, wrk  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8 * args.connections)), hard))

    samples: list[tuple[float, int]] = []
    with nginx_backend() as (work, backend_port):
        proxy, port = start_proxy(backend_port, work)
        done = threading.Event()

        def sample() -> None:
            started = time.monotonic()
            while not done.wait(2):
                samples.append((time.monotonic() - started, status_kib(proxy.pid, "VmRSS")))

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            result = wrk(f"http://127.0.0.1:{port}/", args.connections, args.seconds)
        finally:
            done.set()
            sampler.join()
            stop(proxy)

    # Judge RSS after the first sixth, once every connection and pool exists.
    steady = [kib for t, kib in samples if t > args.seconds / 6]
    low, high = min(steady) / 1024, max(steady) / 1024
    drift = (high - low) / low
    print(f"wrk -t1 -c{args.connections} -d{args.seconds}s: {result['rps']:.0f} req/s, "
          f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
          f"non-2xx {result['non_2xx']:.0f}, socket errors {result['errors']:.0f}")
    print(f"proxy RSS after warm-up: {low:.1f} to {high:.1f} MiB ({100 * drift:.1f}% spread)")
    ok = result["non_2xx"] == 0 and result["errors"] == 0 and drift <= 0.10
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
