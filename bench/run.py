"""Throughput, latency and memory of sillyproxy against direct, Twisted's ReverseProxyResource and nginx."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROXY_CPU = "0"
LOAD_CPU = "1"
SMALL = "/"
LARGE = "/1m.bin"

# nginx's workers run unprivileged: keep every scratch directory in the work dir.
_TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_conf(template: str, work: Path, **values: object) -> str:
    """Fill in an nginx config template, with every scratch directory under C{work}."""
    temp_paths = " ".join(f"{kind}_temp_path {work}/tmp;" for kind in _TEMP_KINDS)
    return template.format(dir=work, temp_paths=temp_paths, **values)


BACKEND_CONF = """
worker_processes 1;
daemon off;
pid {dir}/backend.pid;
error_log {dir}/backend-error.log;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  {temp_paths}
  server {{ listen 127.0.0.1:{blue}; root {dir}/files; location = / {{ return 200 "blue ok\\n"; }} }}
  server {{ listen 127.0.0.1:{green}; root {dir}/files; location = / {{ return 200 "green ok\\n"; }} }}
}}
"""

PROXY_CONF = """
worker_processes {workers};
daemon off;
pid {dir}/proxy.pid;
error_log {dir}/proxy-error.log;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  {temp_paths}
  upstream colours {{
    server 127.0.0.1:{blue} weight=4;
    server 127.0.0.1:{green} weight=1;
    keepalive 32;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://colours;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on {port}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def peak_rss_mib(pid: int) -> float:
    """VmHWM of a process and its children (nginx's worker), in MiB."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * _UNITS[unit]


def start_backends(work: Path, large_body: bytes = b"") -> tuple[subprocess.Popen, int, int]:
    """
    nginx on the load CPU, serving the blue and green backends from C{work}
    (C{/}, and C{/1m.bin} holding C{large_body} if given): the process and
    the two ports, which the caller waits for and stops.
    """
    # nginx workers run as an unprivileged user and must read the files.
    work.chmod(0o755)
    (work / "tmp").mkdir()
    (work / "files").mkdir()
    if large_body:
        (work / "files" / "1m.bin").write_bytes(large_body)
    blue, green = free_port(), free_port()
    (work / "backend.conf").write_text(nginx_conf(BACKEND_CONF, work, blue=blue, green=green))
    backend = subprocess.Popen(
        ["taskset", "-c", LOAD_CPU, "nginx", "-p", str(work), "-c", str(work / "backend.conf")],
        stdin=subprocess.DEVNULL,
    )
    return backend, blue, green


def median_run(url: str, connections: int, seconds: int, repeat: int) -> dict[str, float]:
    """The run with the median requests/s of C{repeat}: one run on a shared machine is noisy."""
    runs = sorted((wrk(url, connections, seconds) for _ in range(repeat)), key=lambda r: r["rps"])
    return runs[len(runs) // 2]


# What a browser sends for a script or an image, besides Host: for
# measuring the cost of a request head as real clients send it.
BROWSER_HEADERS = (
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language: en-US,en;q=0.9",
    "Accept-Encoding: gzip, deflate, br",
    "Referer: https://shop.example.com/",
    "Cookie: session=3f2a9c; theme=dark",
    "Sec-Fetch-Dest: script",
    "Sec-Fetch-Mode: no-cors",
    "Sec-Fetch-Site: same-origin",
    "Connection: keep-alive",
)


def wrk(url: str, connections: int, seconds: int, headers: Sequence[str] = ()) -> dict[str, float]:
    """One wrk run against C{url}, pinned to the load CPU, sending C{headers} besides Host."""
    extra = [argument for header in headers for argument in ("-H", header)]
    out = subprocess.run(
        ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *extra, url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    result = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
        "p99_ms": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
        "non_2xx": 0.0,
        "errors": 0.0,
    }
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        result["non_2xx"] = float(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        result["errors"] = float(sum(int(g) for g in m.groups()))
    return result


@contextmanager
def started(
    command: list[str], port: int, env: dict[str, str] | None, log: Path, pin: bool = True
) -> Iterator[subprocess.Popen]:
    """Run a proxy: on CPU 0 (C{pin}), or anywhere, as proxies with several workers run."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            (["taskset", "-c", PROXY_CPU] if pin else []) + command,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_port(port, process)
        yield process
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="measured run per case (default 10)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is reported")
    parser.add_argument("--pypy-venv", default=str(ROOT / ".venv-pypy"))
    parser.add_argument("--pypy-gc-max", default="120MB", help="PYPY_GC_MAX for the PyPy row")
    parser.add_argument("--pypy-gc-nursery", default="4MB", help="PYPY_GC_NURSERY for the PyPy row")
    parser.add_argument(
        "--pypy-gc-major-collect", default="1.3", help="PYPY_GC_MAJOR_COLLECT for the PyPy row"
    )
    parser.add_argument("--only", default="", help="comma-separated target names")
    parser.add_argument("--json", default="", help="also write the results here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sillyproxy-bench-"))
    backend, blue, green = start_backends(work, os.urandom(1024 * 1024))
    python = sys.executable
    twistd = str(Path(python).with_name("twistd"))
    pypy_twistd = str(Path(args.pypy_venv) / "bin" / "twistd")
    proxy_env = {
        "BLUE": f"http://127.0.0.1:{blue}",
        "GREEN": f"http://127.0.0.1:{green}",
        "BLUE_WEIGHT": "4",
        "GREEN_WEIGHT": "1",
        "SILLYPROXY_ADMIN_LISTEN": "none",
    }
    # PyPy's GC grows the heap freely under load; these keep it under
    # 150 MiB (see the README's benchmark section).
    pypy_env = {
        **proxy_env,
        "PYPY_GC_MAX": args.pypy_gc_max,
        "PYPY_GC_NURSERY": args.pypy_gc_nursery,
        "PYPY_GC_MAJOR_COLLECT": args.pypy_gc_major_collect,
    }

    def sillyproxy(command: str, env: dict[str, str]) -> Callable[[int], tuple[list[str], dict[str, str]]]:
        return lambda port: (
            [command, "--nodaemon", "--pidfile=", "--logfile=-", "sillyproxy", "--listen", f"tcp:{port}:interface=127.0.0.1"],
            env,
        )

    def nginx_proxy(workers: int) -> Callable[[int], tuple[list[str], dict[str, str]]]:
        def build(port: int) -> tuple[list[str], dict[str, str]]:
            conf = work / f"proxy-{port}.conf"
            conf.write_text(nginx_conf(PROXY_CONF, work, blue=blue, green=green, port=port, workers=workers))
            return ["nginx", "-p", str(work), "-c", str(conf)], {}

        return build

    targets: dict[str, Callable[[int], tuple[list[str], dict[str, str]]] | None] = {
        "direct": None,
        "sillyproxy": sillyproxy(twistd, proxy_env),
        # wrk keeps no cookies: every request is a new user, who gets a new
        # key and a Set-Cookie, the most sticky routing ever costs.
        "sillyproxy (sticky cookie)": sillyproxy(
            twistd,
            {**proxy_env, "SILLYPROXY_STICKY": "cookie", "SILLYPROXY_STICKY_SECRET": "bench"},
        ),
        "ReverseProxyResource": lambda port: (
            [python, str(ROOT / "bench" / "reverse_proxy_resource.py"), str(port), str(blue)],
            {},
        ),
        "nginx": nginx_proxy(1),
        # Several workers: unpinned (they would share CPU 0 otherwise),
        # next to wrk and the backend on CPU 1; see bench/workers.py.
        "sillyproxy (2 workers)": sillyproxy(twistd, {**proxy_env, "SILLYPROXY_WORKERS": "2"}),
        "nginx (worker_processes 2)": nginx_proxy(2),
    }
    unpinned = {"sillyproxy (2 workers)", "nginx (worker_processes 2)"}
    if Path(pypy_twistd).exists():
        targets["sillyproxy (PyPy)"] = sillyproxy(pypy_twistd, pypy_env)
    else:
        print(f"no PyPy environment at {args.pypy_venv}; skipping the PyPy row", file=sys.stderr)
    if args.only:
        wanted = set(args.only.split(","))
        targets = {k: v for k, v in targets.items() if k in wanted or k in ("direct", "ReverseProxyResource")}

    results: list[dict[str, object]] = []
    try:
        wait_port(blue, backend)
        wait_port(green, backend)
        for name, build in targets.items():
            for body, path in (("small", SMALL), ("1 MiB", LARGE)):
                if build is None:
                    port, process = blue, None
                    url = f"http://127.0.0.1:{port}{path}"
                    wrk(url, args.connections, args.warmup)
                    measured = median_run(url, args.connections, args.seconds, args.repeat)
                    measured["rss_mib"] = float("nan")
                else:
                    port = free_port()
                    command, env = build(port)
                    log = work / f"{name}-{body}.log".replace(" ", "_")
                    with started(command, port, env, log, pin=name not in unpinned) as process:
                        url = f"http://127.0.0.1:{port}{path}"
                        wrk(url, args.connections, args.warmup)
                        measured = median_run(url, args.connections, args.seconds, args.repeat)
                        measured["rss_mib"] = peak_rss_mib(process.pid)
                results.append({"target": name, "body": body, **measured})
                print(f"{name:22} {body:6} {measured['rps']:9.0f} req/s  p50 {measured['p50_ms']:.2f} ms  "
                      f"p99 {measured['p99_ms']:.2f} ms  rss {measured['rss_mib']:.0f} MiB", file=sys.stderr)

        # Added latency with one connection: sillyproxy's p50 minus direct's.
        single: dict[str, float] = {}
        for name in ("direct", "sillyproxy") if "sillyproxy" in targets else ():
            build = targets[name]
            if build is None:
                url = f"http://127.0.0.1:{blue}{SMALL}"
                wrk(url, 1, args.warmup)
                single[name] = median_run(url, 1, args.seconds, args.repeat)["p50_ms"]
            else:
                port = free_port()
                command, env = build(port)
                with started(command, port, env, work / "c1.log"):
                    url = f"http://127.0.0.1:{port}{SMALL}"
                    wrk(url, 1, args.warmup)
                    single[name] = median_run(url, 1, args.seconds, args.repeat)["p50_ms"]
    finally:
        stop(backend)

    print_table(results, single, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "c1_p50_ms": single}, indent=2))
    shutil.rmtree(work, ignore_errors=True)


def print_table(results: list[dict[str, object]], single: dict[str, float], args: argparse.Namespace) -> None:
    by = {(r["target"], r["body"]): r for r in results}
    print(f"\nwrk -t1 -c{args.connections} -d{args.seconds}s after a {args.warmup}s warm-up, median of {args.repeat}; "
          f"proxy on CPU {PROXY_CPU} (the 2-worker rows: unpinned), wrk and nginx backends on CPU {LOAD_CPU}\n")
    print("| target | body | req/s | p50 ms | p99 ms | peak RSS MiB | x direct | x ReverseProxyResource | non-2xx/errors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        direct = by.get(("direct", r["body"]))
        rpr = by.get(("ReverseProxyResource", r["body"]))
        ratio_direct = r["rps"] / direct["rps"] if direct else float("nan")
        ratio_rpr = r["rps"] / rpr["rps"] if rpr else float("nan")
        rss = "-" if r["rss_mib"] != r["rss_mib"] else f"{r['rss_mib']:.0f}"
        print(f"| {r['target']} | {r['body']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
              f"{rss} | {ratio_direct:.2f} | {ratio_rpr:.2f} | {r['non_2xx']:.0f}/{r['errors']:.0f} |")
    if len(single) == 2:
        print(f"\nadded p50 latency at -c1: sillyproxy {single['sillyproxy']:.3f} ms - direct "
              f"{single['direct']:.3f} ms = {single['sillyproxy'] - single['direct']:.3f} ms")


if __name__ == "__main__":
    main()
