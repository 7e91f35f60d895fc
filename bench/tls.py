"""
Requests/s over TLS: sillyproxy and nginx (HTTP/2 on) as TLS-terminating
proxies in front of the same nginx backends, each client speaking HTTP/1.1
(wrk) and HTTP/2 (h2load, from Debian's nghttp2-client).

The proxy runs on CPU 0, the clients and backends on CPU 1 (as bench/run.py
does).  Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (  # noqa: E402
    BACKEND_CONF,
    LOAD_CPU,
    free_port,
    nginx_conf,
    started,
    stop,
    wait_port,
    wrk,
)

TLS_PROXY_CONF = """
worker_processes 1;
daemon off;
pid {dir}/tls-proxy.pid;
error_log {dir}/tls-proxy-error.log;
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
    # nginx 1.22 (Debian 12) spells "http2 on" this way.
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {dir}/cert.pem;
    ssl_certificate_key {dir}/key.pem;
    location / {{
      proxy_pass http://colours;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


def make_certificate(work: Path) -> None:
    """A self-signed ECDSA certificate for 127.0.0.1, as key.pem and cert.pem in C{work}."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (work / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (work / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def h2load(url: str, clients: int, streams: int, seconds: int) -> float:
    """Requests/s from h2load over C{clients} connections with C{streams} concurrent streams each."""
    result = subprocess.run(
        [
            "taskset", "-c", LOAD_CPU, "h2load", "-t1", f"-c{clients}", f"-m{streams}",
            f"-D{seconds}", "--warm-up-time=2", url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    match = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", result.stdout)
    if match is None:
        raise RuntimeError(result.stdout)
    failed = re.search(r"(\d+) failed", result.stdout)
    if failed is not None and int(failed.group(1)):
        raise RuntimeError(f"h2load saw failures:\n{result.stdout}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is reported")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections")
    parser.add_argument("--h2-clients", type=int, default=10, help="h2load connections")
    parser.add_argument("--h2-streams", type=int, default=10, help="h2load concurrent streams per connection")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sillyproxy-tls-"))
    work.chmod(0o755)
    (work / "tmp").mkdir()
    (work / "files").mkdir()
    make_certificate(work)
    blue, green = free_port(), free_port()
    (work / "backend.conf").write_text(nginx_conf(BACKEND_CONF, work, blue=blue, green=green))
    backend = subprocess.Popen(
        ["taskset", "-c", LOAD_CPU, "nginx", "-p", str(work), "-c", str(work / "backend.conf")],
        stdin=subprocess.DEVNULL,
    )
    twistd = str(Path(sys.executable).with_name("twistd"))
    try:
        wait_port(blue, backend)
        rows = []
        for name in ("sillyproxy", "nginx (http2 on)"):
            rates: dict[str, list[float]] = {"HTTP/1.1 (wrk)": [], "HTTP/2 (h2load)": []}
            for _ in range(args.repeat):
                port = free_port()
                if name == "sillyproxy":
                    command = [
                        twistd, "--nodaemon", "--pidfile=", "--logfile=-", "sillyproxy", "--listen",
                        f"ssl:{port}:interface=127.0.0.1:privateKey={work}/key.pem:certKey={work}/cert.pem",
                    ]
                    env = {
                        "BLUE": f"http://127.0.0.1:{blue}",
                        "GREEN": f"http://127.0.0.1:{green}",
                        "BLUE_WEIGHT": "4",
                        "GREEN_WEIGHT": "1",
                        "SILLYPROXY_ADMIN_LISTEN": "none",
                        "SILLYPROXY_ACCESS_LOG": "off",
                    }
                else:
                    conf = work / f"tls-proxy-{port}.conf"
                    conf.write_text(nginx_conf(TLS_PROXY_CONF, work, port=port, blue=blue, green=green))
                    command = ["nginx", "-p", str(work), "-c", str(conf)]
                    env = {}
                with started(command, port, env, work / f"{port}.log"):
                    url = f"https://127.0.0.1:{port}/"
                    wrk(url, args.connections, 2)
                    rates["HTTP/1.1 (wrk)"].append(wrk(url, args.connections, args.seconds)["rps"])
                    rates["HTTP/2 (h2load)"].append(
                        h2load(url, args.h2_clients, args.h2_streams, args.seconds)
                    )
            rows.append((name, {k: statistics.median(v) for k, v in rates.items()}))
        print(
            f"TLS, small bodies; proxy on CPU 0; wrk -t1 -c{args.connections} -d{args.seconds}s, "
            f"h2load -t1 -c{args.h2_clients} -m{args.h2_streams} -D{args.seconds}; median of {args.repeat}"
        )
        print("| proxy | HTTP/1.1 req/s (wrk) | HTTP/2 req/s (h2load) |\n|---|---:|---:|")
        for name, rate in rows:
            print(f"| {name} | {rate['HTTP/1.1 (wrk)']:.0f} | {rate['HTTP/2 (h2load)']:.0f} |")
    finally:
        stop(backend)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
